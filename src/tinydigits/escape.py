"""User text (a run path, an --out name, a command line) inside generated files: one helper per format.

A path on Linux may hold anything but "/" and NUL: newlines, quotes, `*/`, `$(shell ...)`, bytes
that are not UTF-8. Each generated file embeds such text only through the helper for its format,
so a banner comment stays a comment and a properties value stays one line:

    c_comment("runs/a*/b")          # 'runs/a*\\/b'          inside /* ... */ (C, C++, .ino)
    make_comment("x\n$(shell id)")  # 'x\\n$(shell id)'     after "# " in a Makefile: one line, never code
    properties_value("a\nb=c")      # 'a\\nb=c'             library.properties: key=value on one line
    html_text('<b>"x"</b>')         # '&lt;b&gt;&quot;x&quot;&lt;/b&gt;'
    json_text({"source": path})     # JSON: every string escaped by the json module

All of them first make the text `printable`: a control character, a Unicode line or format
character (the bidirectional overrides of "Trojan Source"), or a byte that is not UTF-8 (which
os.fsdecode turns into a lone surrogate) is written as a visible escape (\\n, \\x1b, \\u202e), and a
backslash as \\\\, so the result reads like the path and can be read back by a person.

No generated C or JavaScript holds user text in a string literal (the banners are comments; the
web page reads model.json at run time and shows its values with textContent), so there is no
C-string or JS-string helper to keep honest.
"""
from __future__ import annotations

import html
import json
import re
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: str) -> str:
    """`text` with every character that could end a line, reorder it or not encode written as an escape."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def c_comment(text: str) -> str:
    """Text inside a /* ... */ comment of C, C++ or JavaScript: it cannot close the comment, open a nested
    one (-Wcomment, an error under -Werror) or form a trigraph (C99 reads `??/` as a backslash)."""
    text = printable(text).replace("*/", "*\\/").replace("/*", "/\\*")
    return re.sub(r"\?(?=\?)", "?\\\\", text)


def ino_comment(text: str) -> str:
    """Text inside a /* ... */ comment of an Arduino sketch. arduino-builder runs the C preprocessor over
    a .ino before it generates prototypes, so what keeps a C comment a comment keeps this one too."""
    return c_comment(text)


def make_comment(text: str) -> str:
    """Text after "# " in a Makefile: one line (a newline would start a line of make code, where
    `$(shell ...)` runs), never ending in the backslash that would continue the comment onto the next line."""
    return _no_continuation(printable(text))


def properties_value(text: str) -> str:
    """A value in Arduino's library.properties: one `key=value` line, so no newline in it and no backslash
    at its end (which Java-style properties readers take for a line that goes on)."""
    return _no_continuation(printable(text))


def _no_continuation(text: str) -> str:
    return text + " " if text.endswith("\\") else text


def html_text(text: str) -> str:
    """Text in HTML, in an element, an attribute value or a comment: no tag, entity, quote or `-->`."""
    return html.escape(printable(text), quote=True)


def json_text(value, indent: int | None = 2) -> str:
    """A JSON document: the json module escapes every string (quotes, newlines, control characters;
    non-ASCII as \\u escapes, so a path that is not UTF-8 round-trips); newline-terminated when indented."""
    return json.dumps(value, indent=indent) + ("\n" if indent is not None else "")
