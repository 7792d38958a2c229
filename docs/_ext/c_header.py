"""Sphinx C-domain entries from fastloss's public headers.

A small reader of the header style fastloss uses (not a C parser): at file
level it takes ``#define NAME value`` macros, ``typedef enum { ... } name;``,
``typedef struct { ... } name;`` and function prototypes, each with the
comment right before it (``/* ... */``) or, for members and enumerators, on
the same line.  Everything else (includes, guards, ``#ifdef`` blocks'
static functions) is skipped.  The result is reStructuredText for
``docs/_gen/`` that the C API page includes, so the page follows the header.
"""
import re

_COMMENT = re.compile(r"/\*(.*?)\*/", re.S)


def _clean_comment(text):
    lines = [ln.strip().lstrip("*").strip() for ln in text.strip().splitlines()]
    return " ".join(ln for ln in lines if ln)


def _rst_text(text):
    """A header comment as RST prose: code-ish words are left alone, '*' and '`' escaped."""
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")
    text = re.sub(r"(\w)_(?=\s|$|[,.;:)])", r"\1\\_", text)   # 'name_ ' is a reference in RST
    return "\\" + text if text and text[0] in "+-" else text             # not a bullet list


def _split_top(src):
    """Top-level items: (kind, decl, comment), in order.  Brace blocks stay whole."""
    # C++ guards and the Python-only static helpers of fastloss_api.h are not API items
    src = re.sub(r"#ifdef (__cplusplus|Py_PYTHON_H)\b.*?#endif[^\n]*", "", src, flags=re.S)
    items = []
    i, n = 0, len(src)
    pending = ""
    while i < n:
        if src.startswith("/*", i):
            j = src.index("*/", i) + 2
            pending = _clean_comment(src[i + 2:j - 2])
            i = j
            continue
        if src[i] in " \t\r\n":
            i += 1
            continue
        if src[i] == "#":
            j = src.find("\n", i)
            j = n if j < 0 else j
            m = re.match(r"#\s*define\s+(\w+)\s+(.+)", src[i:j])
            if m and not m.group(1).endswith("_H"):
                items.append(["macro", (m.group(1), m.group(2).strip()), pending])
            pending = ""
            i = j
            continue
        # a declaration: up to ';' at brace depth 0
        j, depth = i, 0
        while j < n:
            if src.startswith("/*", j):
                j = src.index("*/", j) + 2
                continue
            c = src[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == ";" and depth == 0:
                break
            j += 1
        decl = src[i:j + 1]
        i = j + 1
        kind = None
        if decl.startswith("typedef enum"):
            kind = "enum"
        elif decl.startswith("typedef struct"):
            kind = "struct"
        elif "(" in decl and not decl.startswith(("typedef", "static", "extern")):
            kind = "function"
        # a comment on the rest of the declaration's line is the declaration's own
        eol = src.find("\n", i)
        eol = n if eol < 0 else eol
        m = re.match(r"[ \t]*/\*(.*?)\*/", src[i:eol])
        own = ""
        if m:
            own = _clean_comment(m.group(1))
            i += m.end()
        if kind:
            items.append([kind, decl, own or pending])
            if own:
                pending_group = pending     # a group comment stays for the next ones
                pending = pending_group
                continue
        pending = pending if kind == "function" and not own else ""
    return items


def _members(body):
    """(declaration, comment) for each member of a struct or enum body; a comment on
    lines of its own comes as ("", comment): a note on the members after it."""
    out = []
    pos = 0
    for m in list(_COMMENT.finditer(body)) + [None]:
        code_part = body[pos:m.start()] if m else body[pos:]
        lines = code_part.split("\n")
        for ln in lines:
            if ln.strip():
                out.append((ln.strip(), ""))
        if m is None:
            break
        comment = _clean_comment(m.group(1))
        same_line = "\n" not in code_part and out and code_part.strip() == ""
        trailing = bool(lines) and lines[-1].strip() != ""
        if trailing or (same_line and out and out[-1][1] == "" and pos > 0
                        and "\n" not in body[pos - 1:m.start()]):
            out[-1] = (out[-1][0], comment)
        else:
            out.append(("", comment))
        pos = m.end()
    return out


def _expand_decl(code):
    """'int64_t outer, n_classes, inner;' -> ['int64_t outer', 'int64_t n_classes', ...]."""
    code = code.rstrip(";").strip()
    if "(" in code:                      # a function pointer: one declarator
        return [code]
    m = re.match(r"((?:const\s+)?\w+(?:\s+\w+)*?)\s+([\s\w*,\[\]]+)$", code)
    if not m:
        return [code]
    base, names = m.group(1), m.group(2)
    out = []
    for name in names.split(","):
        name = name.strip()
        stars = len(name) - len(name.lstrip("*"))
        out.append("%s %s%s" % (base, "*" * stars, name.lstrip("*")))
    return out


def header_to_rst(src, functions_heading="Functions"):
    """RST for the C domain: macros, enums, structs, functions of one header."""
    items = _split_top(src)
    parts = {"macro": [], "enum": [], "struct": [], "function": []}
    for kind, decl, comment in items:
        if kind == "macro":
            name, value = decl
            text = ".. c:macro:: %s\n\n   ``%s``" % (name, value)
            if comment:
                text += " -- " + _rst_text(comment)
            parts["macro"].append(text + "\n")
        elif kind in ("enum", "struct"):
            m = re.match(r"typedef\s+(enum|struct)\s*\{(.*)\}\s*(\w+)\s*;", decl, re.S)
            if not m:
                continue
            body, name = m.group(2), m.group(3)
            lines = [".. c:%s:: %s" % ("enumerator" if False else kind, name), ""]
            if comment:
                lines += ["   " + _rst_text(comment), ""]
            for code, mcomment in _members(body):
                if not code:
                    lines += ["   " + _rst_text(mcomment), ""]
                    continue
                if kind == "enum":
                    ename = code.rstrip(",").split("=")[0].strip()
                    value = code.rstrip(",").split("=")[1].strip() if "=" in code else ""
                    lines.append("   .. c:enumerator:: %s" % ename)
                    lines.append("")
                    desc = ("``= %s``" % value if value else "") + (
                        (" -- " if value else "") + _rst_text(mcomment) if mcomment else "")
                    if desc:
                        lines += ["      " + desc, ""]
                else:
                    for d in _expand_decl(code):
                        lines.append("   .. c:member:: %s" % d)
                        lines.append("")
                        if mcomment:
                            lines += ["      " + _rst_text(mcomment), ""]
            parts[kind].append("\n".join(lines))
        else:
            sig = " ".join(decl.rstrip(";").split())
            text = ".. c:function:: %s\n" % sig
            if comment:
                text += "\n   " + _rst_text(comment) + "\n"
            parts["function"].append(text)
    out = []
    for kind, title in (("macro", "Constants"), ("enum", "Enumerations"),
                        ("struct", "Structures"), ("function", functions_heading)):
        if parts[kind]:
            out += [title, "~" * len(title), ""] + [p + "\n" for p in parts[kind]]
    return "\n".join(out)
