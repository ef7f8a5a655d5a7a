job "web-files" {
  type        = "service"
  datacenters = ["*"]

  meta {
    modalc_app      = "web"
    modalc_format   = "1"
    modalc_function = "files"
    modalc_web      = "web_server"
  }

  group "files" {
    count = 1

    restart {
      attempts = 3
      mode     = "delay"
    }

    network {
      port "http" {
        to = 8765
      }
    }

    service {
      name     = "web-files"
      port     = "http"
      provider = "nomad"
      tags     = ["modalc", "modalc-app=web", "modalc-function=files", "modalc-web=web_server"]

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "main" {
      driver       = "docker"
      kill_timeout = "10s"

      config {
        image   = "modalc:c005c3b52cde4835"
        command = "python"
        args    = ["-m", "agent_runtime", "--serve", "web", "--code", "${NOMAD_TASK_DIR}/code", "--module", "web", "--qualname", "files", "--port", "${NOMAD_PORT_http}", "--timeout", "300"]
        ports   = ["http"]
      }

      identity {
        file = true
      }

      env {
        MODALC_IMAGE        = "db0e3efed8cb8385"
        MODALC_IN_CONTAINER = "1"
        PYTHONUNBUFFERED    = "1"
      }

      template {
        destination     = "local/code/web.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Web endpoints: a FastAPI endpoint, a plain ASGI app, a WSGI app and a web server.

    modalc serve examples/web.py      # serve them on this machine, reload on change
    modalc deploy examples/web.py     # Nomad service jobs; prints each endpoint's URL
"""

import modal

app = modal.App("web")
image = modal.Image.debian_slim()


@app.function(image=image)
@modal.fastapi_endpoint(method="GET", docs=True)
def greet(name: str = "world", excited: bool = False) -> dict:
    return {"greeting": f"Hello, {name}{'!' if excited else '.'}"}


@app.function(image=image)
@modal.fastapi_endpoint(method="POST", label="adder")
def add(item: dict) -> dict:
    return {"sum": sum(item.get("numbers", []))}


@app.function(image=image, min_containers=2)
@modal.asgi_app()
def plain_asgi():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = f"asgi says {scope['method']} {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    return app


@app.function(image=image)
@modal.wsgi_app()
def plain_wsgi():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"wsgi says {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()]

    return app


@app.function(image=image)
@modal.web_server(port=8765, startup_timeout=10)
def files():
    import subprocess
    import sys

    subprocess.Popen([sys.executable, "-m", "http.server", "8765", "--bind", "0.0.0.0"])
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
