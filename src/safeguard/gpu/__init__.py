"""The GPU path (``pip install 'safeguard[gpu]'``): batched decode, PDQ and matching in torch.

For bulk work (backfills of a whole media store, large batch scans), not for the request path: a scan
of one upload is faster on the CPU than a trip to a GPU. Everything here runs on CUDA when torch sees
a GPU and falls back to the CPU otherwise, with the same results; ``safeguard backfill`` and
``bench/gpu_bench.py`` drive it. Importing this package does not import torch; the modules below do.

- :mod:`safeguard.gpu.device`: which device runs (``auto``, ``cpu``, ``cuda``, ``cuda:1``), and why not.
- :mod:`safeguard.gpu.pdq`: PDQ as batched matrix products, the same hash as ``pdqhash``.
- :mod:`safeguard.gpu.match`: exact batched Hamming matching, chunked over the bank.
- :mod:`safeguard.gpu.decode`: nvJPEG batch decode where torchvision and CUDA are present, else Pillow
  through :mod:`safeguard.media` (the same safety limits as uploads).
- :mod:`safeguard.gpu.pipeline`: bytes in, (PDQ hex, quality) out, in batches.
"""
