"""A built image: apt and pip packages, environment, commands and local files.

modalc writes a content-addressed Dockerfile for the image next to the job
specs (``images/<hash>/Dockerfile``); the jobs reference it by tag.

    modalc build examples/built_image.py -o deploy/
"""

import json
import os

import modal

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("curl", "jq")
    .pip_install("requests==2.32.3", "pyyaml>=6")
    .env({"APP_MODE": "production", "LOG_LEVEL": "info"})
    .run_commands("mkdir -p /opt/app", "echo built > /opt/app/stamp")
    .add_local_file("assets/greeting.txt", "/opt/app/greeting.txt")
    .add_local_dir("assets/config", "/opt/app/config")
)

app = modal.App("built-image", image=image)


def _read(path: str, fallback: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return fallback


@app.function()
def greet(name: str) -> str:
    """Reads the greeting and settings that the image carries."""
    settings = json.loads(_read("/opt/app/config/settings.json", '{"greeting": "hello", "repeat": 1}'))
    mode = os.environ.get("APP_MODE", "local")
    return " ".join([settings["greeting"]] * settings["repeat"]) + f", {name} ({mode})"


@app.local_entrypoint()
def main(name: str = "world"):
    print(greet.remote(name))
