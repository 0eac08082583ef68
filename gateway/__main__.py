"""`python -m gateway` (or `agent-slm-gateway`, `make serve`): the gateway on `serve.host`:`serve.port`, with the
settings read once from the environment and `SLM_CONFIG`."""

import uvicorn

from gateway.app import Gateway, create_app
from pipeline.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    uvicorn.run(create_app(Gateway(settings)), host=settings.serve.host, port=settings.serve.port, log_level="info")


if __name__ == "__main__":
    main()
