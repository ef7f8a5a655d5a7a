"""A function that imports a helper package next to the script.

modalc ships the script and the local modules it imports with each job.

    modalc run examples/sibling_module.py
"""

import modal
from helpers.text import word_counts

app = modal.App("sibling-module")


@app.function()
def count_words(text: str) -> dict[str, int]:
    """Counts words with ``helpers.text.word_counts``."""
    return word_counts(text)


@app.local_entrypoint()
def main(text: str = "the quick brown fox jumps over the lazy dog. The end!"):
    print(sorted(count_words.remote(text).items()))
