/* Files linked into the binary so that it needs no file at run time: the zygote's Python
 * sources (the sandbox runner, the page-learning profiler, the warm-up) and the OpenAPI
 * document /openapi.json serves, each NUL-terminated; and the sandboxes' init program
 * (src/init/sandbox-init.c, built by the Makefile, which passes its path), between
 * sandbox_init_bin and sandbox_init_bin_end. */
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
        .global sandbox_init_bin
        .global sandbox_init_bin_end
        .balign 16
sandbox_init_bin:
        .incbin SANDBOX_INIT_BIN
sandbox_init_bin_end:
        .section .note.GNU-stack,"",@progbits
