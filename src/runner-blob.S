/* The zygote's Python sources, linked into the binary so the zygote needs no file: the sandbox
 * runner and the warm-up. Each is NUL-terminated. */
        .section .rodata
        .global runner_py
        .global warmup_py
runner_py:
        .incbin "src/runner.py"
        .byte 0
warmup_py:
        .incbin "src/warmup.py"
        .byte 0
        .section .note.GNU-stack,"",@progbits
