"""One pipeline per endpoint: admission -> screening of inputs -> run -> screening of outputs ->
one audit record -> the response, each read top-down in its own module (`execute`,
`executions`, `screen`).

Routes only authenticate, parse and call a pipeline; the steps the pipelines share live beside
them (`admission`, `screening`, `caller`). An execution splits where its code runs: `intake`
is the half an API node does (admission, the code screened, a `Job`), `carry` the half the
node with the sandbox does (run, the output screened, the record), `answer` what both build.
"""
