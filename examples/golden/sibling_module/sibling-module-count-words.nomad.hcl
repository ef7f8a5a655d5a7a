job "sibling-module-count-words" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "sibling-module"
    modalc_format   = "1"
    modalc_function = "count_words"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "count_words" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "main" {
      driver       = "docker"
      kill_timeout = "10s"

      config {
        image   = "modalc:22b0b6eec6d9433b"
        command = "python"
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "sibling_module", "--qualname", "count_words", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
      }

      dispatch_payload {
        file = "call.pkl"
      }

      identity {
        file = true
      }

      env {
        MODALC_IMAGE        = "0257b6940541c842"
        MODALC_IN_CONTAINER = "1"
        PYTHONUNBUFFERED    = "1"
      }

      template {
        destination     = "local/code/helpers/__init__.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Helpers shared by ``examples/sibling_module.py``; shipped with its jobs."""
EOT
      }

      template {
        destination     = "local/code/helpers/text.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Text helpers imported by ``examples/sibling_module.py``."""


def word_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts
EOT
      }

      template {
        destination     = "local/code/sibling_module.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
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
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
