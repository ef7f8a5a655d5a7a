job "model-class-Model" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "model-class"
    modalc_format   = "1"
    modalc_function = "Model"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "Model" {
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
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "model_class", "--qualname", "Model", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "120", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
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
        destination     = "local/code/model_class.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""A model served by a class: loaded once per container, many inputs per container.

    modalc run examples/model_class.py
    modalc run examples/model_class.py::Model.score --scale 3 --word gamma

``@modal.enter()`` builds the "weights" once per container, before the first
input; ``@modal.exit()`` runs once at the end. ``scale`` is a class parameter:
it travels with every call, together with the method's name. ``score_batch``
is ``@modal.batched``: a container calls it with lists of up to 8 words.
Set ``log`` to a file path to see each container's enter and exit (the tests do).
"""

import asyncio
import os

import modal

app = modal.App("model-class")

VOCAB = ["alpha", "beta", "gamma", "delta", "epsilon"]


def _note(path: str, what: str) -> None:
    if path:
        with open(path, "a") as fh:
            fh.write(f"{what} {os.environ.get('NOMAD_ALLOC_ID', 'local')}\n")


@app.cls(cpu=0.5, memory=256, timeout=120)
class Model:
    scale: int = modal.parameter(default=1)
    log: str = modal.parameter(default="")

    @modal.enter(snap=True)  # snap= is accepted; Nomad has no memory snapshots, so enter just runs
    def load(self):
        self.weights = {word: (i + 1) * self.scale for i, word in enumerate(VOCAB)}
        _note(self.log, "enter")

    @modal.exit()
    def unload(self):
        _note(self.log, "exit")

    @modal.method()
    def score(self, word: str) -> int:
        return self.weights.get(word, 0)

    @modal.method()
    async def score_async(self, word: str) -> int:
        await asyncio.sleep(0.01)
        return self.weights.get(word, 0)

    @modal.method()
    def tokens(self, text: str):
        for word in text.split():
            yield word, self.weights.get(word, 0)

    @modal.batched(max_batch_size=8, wait_ms=10)
    def score_batch(self, words: list[str]) -> list[int]:
        return [self.weights.get(word, 0) for word in words]


@app.local_entrypoint()
def main(log: str = ""):
    model = Model(scale=10, log=log)
    words = VOCAB * 8
    print("map total:", sum(model.score.map(words)))
    print("async beta:", model.score_async.remote("beta"))
    print("tokens:", list(model.tokens.remote_gen("alpha delta")))
    print("batched total:", sum(model.score_batch.map(words)))
    print("batch of one:", model.score_batch.remote("epsilon"))
EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
