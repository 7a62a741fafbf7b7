"""A local web app: draw a digit, watch the probabilities; an HTTP API over the same models.

The float model is the run's model.keras converted to a float32 .tflite in memory (same answers as
Keras, see `tinydigits convert`), run by LiteRT; the int8 model is RUN/model_int8.tflite when it
exists. Inputs go through the same MNIST-style preprocessing as `tinydigits predict`.
The page is the one `export-web` writes: it runs the int8 model in the browser as WebAssembly
(tinydigits.wasm, built here with clang when it is installed) and the float model through the API.

    app = create_app(Run("runs/lesson"))          # a FastAPI app; `tinydigits serve` runs it with uvicorn

API: POST /api/predict (JSON {"pixels": [784 numbers]} or a multipart image file), GET /api/model,
GET /api/health, GET /api/mistakes; OpenAPI at /api/openapi.json. Request bodies are the pydantic
models below (PixelsRequest, ImageForm): one that does not match gets a 422 whose `detail` is one
line; an unreadable image, or one over images.MAX_PIXELS (read from its header, before it is
decoded), a 400; a body over MAX_BODY_BYTES a 413; never a 500.

The event loop only moves bytes: decoding, preprocessing and inference run in a pool of
http_limits.WORKER_THREADS threads, so a slow request (a large photo) never holds up another one; with more
than http_limits.MAX_PENDING requests waiting for it, a request gets 429. http_limits.py caps the head of a
request, its Host header and the time it may take to arrive.
"""
from __future__ import annotations

import gc
import logging
import os
import socket
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import orjson
from fastapi import FastAPI, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from .errors import TinyDigitsError
from .http_limits import MAX_BODY_BYTES, Pool, RequestGuard, loopback_name, uvicorn_settings
from .runs import Run
from .web import model_facts, served_files

PIXELS = 784
SHOWN_ERRORS = 3  # validation problems named in one `detail` line
log = logging.getLogger("tinydigits.serve")


# ------------------------------------------------------------------ request and response bodies

ModelName = Literal["float", "int8"]
Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]  # a number: no strings, booleans, lists


class PixelsRequest(BaseModel):
    """JSON body of POST /api/predict: a drawing."""

    model_config = ConfigDict(extra="forbid")  # a misspelt "model" is an error, not the float model
    pixels: list[Pixel] = Field(min_length=PIXELS, max_length=PIXELS,
                                description="row-major 28x28, 0-1 floats or 0-255 values, either polarity")
    model: ModelName = "float"


class ImageForm(BaseModel):
    """multipart/form-data body of POST /api/predict: an image file (PNG, JPEG, BMP, GIF, TIFF, WebP ...)."""

    file: UploadFile
    model: ModelName = "float"


class Prediction(BaseModel):
    digit: int
    probabilities: list[float] = Field(description="softmax output, one per class")
    model: ModelName
    seen: list[int] = Field(description="the 784 preprocessed pixels the model saw, 0-255")
    blank: bool = Field(description="no ink was found: the digit is a guess")


class Problem(BaseModel):
    detail: str


def problem_line(error: ValidationError | RequestValidationError) -> str:
    """Pydantic's errors as one line: 'pixels.3: Input should be a valid number (and 780 more)'."""
    def where(loc) -> str:  # a key the client sent may hold anything: quoted and cut unless a plain name
        names = [str(p) if isinstance(p, int) else p[:40] if p.isidentifier() else repr(p[:40])
                 for p in loc if p != "body"]
        return ".".join(names) or "body"

    errors = error.errors()
    parts = [f"{where(e['loc'])}: {' '.join(e['msg'].split())}" for e in errors[:SHOWN_ERRORS]]
    more = f" (and {len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
    return "; ".join(parts) + more


class Models:
    """The float and int8 LiteRT interpreters of one run, behind a lock (interpreters are not thread-safe)."""

    def __init__(self, run: Run):
        from .convert import to_tflite
        from .runtimes import LiteRT

        self.run = run
        self.engines = {"float": LiteRT(to_tflite(run.model()))}
        self.int8 = run.int8_model() if run.converted else None  # also compiled to the page's .wasm
        if self.int8:
            self.engines["int8"] = LiteRT(self.int8)
        self.lock = threading.Lock()
        self.facts = model_facts(run, self.int8)

    def predict(self, digits: np.ndarray, model: str) -> np.ndarray:
        """(N, 28, 28) uint8 MNIST-like -> (N, 10) probabilities."""
        with self.lock:
            return self.engines[model].predict(digits)


def create_app(run: Run, models: Models | None = None, loopback: bool = False) -> FastAPI:
    """The app; `loopback`: answer only requests whose Host is a name of this machine (serve on 127.0.0.1)."""
    from .preprocess import is_blank, mnist_like, open_image, preprocess_pixels

    models = models or Models(run)
    pool = Pool()  # its threads start on first use and end with the process
    static = Path(str(resources.files("tinydigits").joinpath("static")))
    app = FastAPI(title="tinydigits", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Draw a digit, watch the network think. Pixels: 784 numbers, row-major 28x28, "
                              "either 0-1 floats or 0-255 values, any polarity.")
    dataset = _dataset(models)
    mistakes = _mistakes(models, dataset)
    page = served_files(models.run, models.int8, dataset)  # model.json, tinydigits.wasm, explore.json

    app.add_middleware(RequestGuard, loopback=loopback)

    @app.exception_handler(TinyDigitsError)
    async def bad_input(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(ClientDisconnect)
    async def gone(request, exc):  # nobody to answer: one line in the log, not a traceback
        log.info(f"client {_client(request)} disconnected before its {request.method} {request.url.path} was received")
        return Response(status_code=400)

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc):
        return JSONResponse({"detail": problem_line(exc)}, status_code=422)

    index_html = (static / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def index():
        return Response(index_html, media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/{name}", include_in_schema=False)
    async def page_file(name: str):
        if name not in page:
            return JSONResponse({"detail": "not found"}, status_code=404)
        kind = "application/wasm" if name.endswith(".wasm") else "application/json"
        return Response(page[name], media_type=kind, headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok", "models": list(models.engines)}

    @app.get("/api/model")
    async def model() -> dict:
        return models.facts

    errors = {status: {"model": Problem, "description": why} for status, why in (
        (400, "not a readable image, or a model this run does not have"), (413, f"body over {MAX_BODY_BYTES} bytes"),
        (415, "neither JSON nor multipart"), (422, "the body or query does not match the schema"))}

    @app.post("/api/predict", response_model=Prediction, responses=errors, openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": PixelsRequest.model_json_schema()},
                                      "multipart/form-data": {"schema": ImageForm.model_json_schema()}}}})
    async def predict(request: Request):
        """Probabilities of the ten digits for a drawing (JSON pixels) or an uploaded image file."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await _read_capped(request)
        if kind == "application/json":
            reply = await pool.run(answer_drawing, body)
        elif kind == "multipart/form-data":
            form = ImageForm.model_validate(dict((await _form(request, body)).multi_items()))
            reply = await pool.run(answer_image, await form.file.read(), form.model)
        else:
            return JSONResponse({"detail": "send application/json or multipart/form-data"}, status_code=415)
        return Response(reply, media_type="application/json")

    def answer_drawing(body: bytes) -> bytes:  # in the pool, as all CPU work of a request
        drawing = PixelsRequest.model_validate_json(body)
        return answer(preprocess_pixels(np.array(drawing.pixels)), drawing.model)

    def answer_image(data: bytes, choice: str) -> bytes:
        return answer(mnist_like(open_image(data)), choice)  # open_image refuses a bomb from its header

    def answer(digit: np.ndarray, choice: str) -> bytes:
        if choice not in models.engines:
            raise TinyDigitsError(f"model must be one of {', '.join(models.engines)}, got {choice!r}")
        probs = models.predict(digit[None], choice)[0]
        result = {"digit": int(probs.argmax()), "probabilities": [round(float(p), 6) for p in probs],
                  "model": choice, "seen": digit.ravel(), "blank": is_blank(digit)}
        return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)

    @app.get("/api/mistakes", responses={422: errors[422]})
    async def wrong(offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=100)] = 24) -> dict:
        """Test images the float model gets wrong, most confident first, with their probabilities."""
        return {"total": len(mistakes), "items": mistakes[offset:offset + limit]}

    return app


def _freeze_heap() -> None:
    """Only while serving: the models and the test set live as long as the server, so the collector's
    pauses are kept off requests by moving everything allocated so far out of its reach."""
    gc.freeze()


async def _read_capped(request) -> bytes:
    """The body, refusing more than MAX_BODY_BYTES even when no Content-Length was sent."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request, body: bytes):
    from starlette.requests import Request as StarletteRequest

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await StarletteRequest(request.scope, receive).form(max_files=1, max_fields=4)
    except Exception as e:  # malformed multipart: the parser's own exception types vary
        raise TinyDigitsError(f"malformed multipart body ({type(e).__name__})") from None


def _client(request) -> str:
    return ":".join(str(part) for part in request.client) if request.client else "?"


def _dataset(models: Models):
    try:
        return models.run.dataset(allow_download=False)
    except TinyDigitsError:
        return None  # the app still draws and predicts without the test set


def _mistakes(models: Models, ds) -> list[dict]:
    from .evaluate import confident_mistakes

    if ds is None:
        return []
    probs = models.predict(ds.x_test, "float")
    return [{"index": int(i), "label": int(ds.y_test[i]), "digit": int(probs[i].argmax()),
             "probabilities": [round(float(p), 4) for p in probs[i]], "pixels": ds.x_test[i].ravel().tolist()}
            for i in confident_mistakes(probs, ds.y_test, k=200)]


def app_from_environment() -> FastAPI:
    """The app factory each uvicorn worker process calls; `serve` passes the run folder in the environment."""
    app = create_app(Run(os.environ["TINYDIGITS_SERVE_RUN"]), loopback=os.environ.get("TINYDIGITS_SERVE_LOOPBACK") == "1")
    _freeze_heap()
    return app


def check_can_listen(host: str, port: int) -> None:
    """Bind and release host:port, so a taken port or an unknown host is one clear error before start-up."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except socket.gaierror as e:
        raise TinyDigitsError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    except OSError as e:
        raise TinyDigitsError(f"cannot listen on {host}:{port} ({e.strerror}; is another server using the port?)") from None


def serve(run: Run, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, announce=print) -> None:
    """Serve the app; everything that can fail (run folder, models, port) is checked before `announce`."""
    import uvicorn

    if not 0 < port < 65536:
        raise TinyDigitsError(f"--port must be 1-65535, got {port}")
    if workers < 1:
        raise TinyDigitsError(f"--workers must be at least 1, got {workers}")
    check_can_listen(host, port)
    loopback = loopback_name(host)  # on 127.0.0.1 only requests for localhost are answered (DNS rebinding)
    app = create_app(run, loopback=loopback) if workers == 1 else Models(run)  # one clear error, not one per worker
    announce(f"tinydigits serving {run.folder} on http://{host}:{port}/ (Ctrl+C to stop)")
    if workers == 1:
        _freeze_heap()
        try:
            uvicorn.run(app, host=host, port=port, **uvicorn_settings())
        finally:
            gc.unfreeze()  # called from Python (a notebook): the caller gets its collector back
        return
    os.environ["TINYDIGITS_SERVE_RUN"] = str(run.folder.resolve())
    os.environ["TINYDIGITS_SERVE_LOOPBACK"] = "1" if loopback else "0"
    uvicorn.run("tinydigits.serve:app_from_environment", factory=True, host=host, port=port, workers=workers,
                **uvicorn_settings())
