/* The sandbox runner's Python source, linked into the binary so the zygote needs no file. */
        .section .rodata
        .global runner_py
        .global runner_py_end
runner_py:
        .incbin "src/runner.py"
runner_py_end:
        .byte 0
        .section .note.GNU-stack,"",@progbits
