"""One pipeline per endpoint: admission -> screening of inputs -> run -> screening of outputs ->
one audit record -> the response, each read top-down in its own module (`execute`, `screen`).

Routes only authenticate, parse and call a pipeline; the steps the pipelines share live beside
them (`admission`, `screening`, `caller`).
"""
