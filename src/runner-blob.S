/* Files linked into the binary so that it needs no file at run time: the zygote's Python
 * sources (the sandbox runner, the page-learning profiler, the warm-up) and the OpenAPI
 * document /openapi.json serves. Each is NUL-terminated. */
        .section .rodata
        .global runner_py
        .global learn_py
        .global warmup_py
runner_py:
        .incbin "src/runner.py"
        .byte 0
learn_py:
        .incbin "src/learn.py"
        .byte 0
warmup_py:
        .incbin "src/warmup.py"
        .byte 0
        .global openapi_json
openapi_json:
        .incbin "docs/openapi.json"
        .byte 0
        .section .note.GNU-stack,"",@progbits
