"""``birefvid serve``'s HTTP server: the model loaded once, each picture POSTed to ``/v1/remove`` cut out by the
``image`` command's own code (so a reply equals ``birefvid image``'s file), one at a time, a few more waiting.

Standard library only (``http.server``, as the live preview's): ``POST /v1/remove`` takes the picture as the raw
body or as a multipart field ``file``, query options named as ``birefvid image``'s flags (``output``, ``format``,
``background``, ...); ``GET /health`` says the server is ready and which model it runs. With an API key (see
``api_key``), every request but ``/health`` must show it (``api_key_refusal``), or gets 401 before its body is read.
Every refusal is a 4xx or 503 with a one-line JSON body ``{"error": "..."}``.

A body is read whole (with a ``Content-Length`` or chunked) before its request takes a place in the model's queue:
the queue is for pictures ready to cut out, so slow uploads (a phone on a bad network) never hold it. Bodies being
read are bounded apart, by ``uploads`` at a time; a client that stops sending is dropped after ``read_timeout``, and
one that sends too slowly (a byte now and then: slowloris) once its body is behind ``min_upload_rate`` (see ``PacedReads``).
A request head must come whole within ``read_timeout``, an idle kept-alive connection is closed after ``keep_alive``, and
at most ``max_connections`` connections have a thread: past it ``Overflow`` answers ``/health``, or 503, without one.
"""
