"""Retries and timeouts: a retry count, a backoff policy and per-attempt timeouts.

    modalc run examples/retries_timeouts.py
"""

import modal

app = modal.App("retries-timeouts")


@app.function(retries=3, timeout=60)
def flaky_sum(n: int) -> int:
    """Retried up to 3 times, 1 s apart; each attempt may take 60 s."""
    return sum(range(n))


@app.function(
    retries=modal.Retries(max_retries=2, backoff_coefficient=2.0, initial_delay=0.1),
    timeout=600,
)
def with_backoff(text: str) -> str:
    """Retried twice, waiting 0.1 s then 0.2 s."""
    return text[::-1]


@app.function(timeout=5)
def quick(x: float) -> float:
    """Must finish within 5 seconds."""
    return round(x**0.5, 6)


@app.local_entrypoint()
def main():
    print(flaky_sum.remote(100), with_backoff.remote("modalc"), quick.remote(2.0))
