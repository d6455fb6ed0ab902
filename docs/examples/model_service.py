"""A model service instrumented the way the Flask/Gradio/FastAPI tutorials do
it: prometheus_client counters and histograms, /metrics beside the model's
own route. infermon scrapes it with docs/examples/infermon.yml.

    pip install prometheus_client
    python model_service.py 8000        # GET /predict?text=hi, GET /metrics

`/predict?fail=1` answers 500, so the error-ratio rule can be tried.
Only the Python standard library and prometheus_client are used.
"""

import json
import sys
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server
from urllib.parse import parse_qs

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

REQUESTS = Counter(
    "model_requests_total", "Requests answered.", ["route", "status"]
)
LATENCY = Histogram(
    "model_request_latency_seconds", "Time to answer a request.", ["route"]
)
# The tutorials' GPU gauge is a percentage (0-100), as nvidia-smi prints it.
GPU_UTIL = Gauge("model_gpu_utilization_percent", "GPU busy, percent.")
METRICS = make_wsgi_app()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        return METRICS(environ, start_response)
    if path != "/predict":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    started = time.perf_counter()
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if query.get("fail"):
        status, body = "500 Internal Server Error", {"error": "model failed"}
    else:
        text = query.get("text", [""])[0]
        status, body = "200 OK", {"label": "positive", "length": len(text)}
    GPU_UTIL.set(42.0)
    LATENCY.labels("/predict").observe(time.perf_counter() - started)
    REQUESTS.labels("/predict", status.split()[0]).inc()
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server("127.0.0.1", port, app, handler_class=QuietHandler) as server:
        print(f"serving on 127.0.0.1:{port}", flush=True)
        server.serve_forever()
