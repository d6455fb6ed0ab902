"""A minimal HTTP server around sentence-transformers (the usual "Python
model service" infermon replaces): POST /embed {"inputs": "text"} → [[...]],
one request at a time per worker thread, for the HTTP comparison in
bench/run.sh. Not a product: just the peer's natural shape."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from sentence_transformers import SentenceTransformer

model_dir, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = SentenceTransformer(model_dir, device="cpu")
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        inputs = body["inputs"] if isinstance(body["inputs"], list) else [body["inputs"]]
        with lock:
            vectors = model.encode(inputs, normalize_embeddings=True).tolist()
        out = json.dumps(vectors).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
