def median(values):
    ordered = sorted(values)
    count = len(ordered)
    if count == 0:
        raise ValueError("median() of an empty sequence")
    middle = count // 2
    if count % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
