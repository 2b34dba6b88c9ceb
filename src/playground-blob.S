/* The playground page's files (src/playground/), linked into the binary so that the server
 * serves them with no file at run time; each between its name and name_end (src/playground.c). */
        .section .rodata
        .global playground_html
        .global playground_html_end
        .global playground_js
        .global playground_js_end
        .global playground_css
        .global playground_css_end
playground_html:
        .incbin "src/playground/index.html"
playground_html_end:
playground_js:
        .incbin "src/playground/app.js"
playground_js_end:
playground_css:
        .incbin "src/playground/style.css"
playground_css_end:
        .section .note.GNU-stack,"",@progbits
