"""Erlang B and Erlang C: blocking, probability of waiting and mean wait of M/M/c queues."""


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of c servers offered a erlangs (stable recursion, no factorials)."""
    if c < 0 or a < 0:
        raise ValueError("c and a must not be negative")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c offered a = lambda/mu erlangs (a < c)."""
    if c < 1 or not 0 <= a < c:
        raise ValueError("need c >= 1 and 0 <= a < c")
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean time in queue of M/M/c: C(c, A) / (c mu - lambda)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)
