"""``birefvid serve``'s defaults (its options' help shows them) and the bounds its parts share."""

MAX_BYTES = 25 * 1024 * 1024  # a 50 MP JPEG is ~20 MB
MAX_PIXELS = 64_000_000  # a 45 MP camera's photo fits; a decompression bomb (a tiny PNG of gigapixels) does not
QUEUE = 4  # requests waiting while one is cut out; more get 503
UPLOADS = 8  # bodies being received at once; more get 503. Memory for bodies: (UPLOADS + 1 + QUEUE) x MAX_BYTES at most
READ_TIMEOUT_S = 30.0  # the longest a client may send nothing mid-body (nginx's client_body_timeout), and take over a request head (client_header_timeout)
MIN_UPLOAD_RATE = 50 * 1024  # bytes/s a body must keep up, after a grace of READ_TIMEOUT_S (Apache's RequestReadTimeout MinRate)
KEEP_ALIVE_S = 5.0  # the longest a connection may sit idle between requests (Apache's KeepAliveTimeout, uvicorn's, Node's)
MAX_CONNECTIONS = 256  # connections served at once, a thread each (gunicorn's worker_connections is 1000, on an event loop)
RETRY_AFTER_S = 2
REPLY_PIECE = 256 * 1024  # a reply is sent in pieces: the socket timeout bounds each piece's wait, not the whole reply
