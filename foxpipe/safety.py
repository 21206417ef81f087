"""Keeping user text inert wherever it goes: spreadsheet cells (no formulas), Markdown
(shown as the literal text typed) and log records (no secret in any case). No Streamlit here."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

# ------------------------------------------------------------------ spreadsheet cells

# A cell starting with one of these (after spaces) is run as a formula by Excel, LibreOffice
# and Google Sheets when a CSV is opened: =HYPERLINK(...), +cmd|..., -1+1, @SUM(...).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_LEADING_SPACE = " \n\x0b\x0c"


def _needs_quote(text: str) -> bool:
    if text.lstrip(_LEADING_SPACE).startswith(FORMULA_STARTS):
        return True
    # A cell that already starts with the quote is quoted again, so that reading it back
    # (csv_cell_value) gives exactly the text that was written.
    return text.startswith("'") and _needs_quote(text[1:])


def csv_cell(value: Any) -> Any:
    """A value safe to write to a CSV that a spreadsheet may open: text that a spreadsheet
    would run as a formula gets a leading apostrophe (shown as text, never run). Numbers and
    other values are returned unchanged."""
    if isinstance(value, str) and _needs_quote(value):
        return "'" + value
    return value


def csv_cell_value(value: Any) -> Any:
    """The original text of a cell written by ``csv_cell`` (its exact inverse)."""
    if isinstance(value, str) and value.startswith("'") and _needs_quote(value[1:]):
        return value[1:]
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in values]


# ------------------------------------------------------------------ Markdown

# Characters that start Markdown (CommonMark + GFM) or Streamlit syntax anywhere in a line:
# links and images ([ ]), autolinks and HTML (< >), emphasis and strikethrough (* ~, and _ at a word's edge), code
# (`), headings (#), tables (|), LaTeX ($), entities (&), directives such as :red[...] (a ':'
# right before a letter or '/'), and the backslash itself. Each gets a backslash escape, so it
# shows as typed. (Streamlit's emoji and :material/...: shortcodes are matched in the rendered
# text, so they may still show as an icon: harmless, nothing is loaded from elsewhere.) Plain punctuation ('.', ',', "'", '!', '(', ':'
# before a space) is left as is, so ordinary sentences read the same in the source.
_MD_INLINE = re.compile(r"([\\`*\[\]<>#|~$&]|:(?=[A-Za-z/])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# At the start of a line: lists (- + 1.), block quotes (>), setext and thematic breaks (= -).
_MD_LINE_START = re.compile(r"^([ \t]*)([-+=]|\d+(?=[.)]))", re.MULTILINE)


def escape_markdown(text: Any) -> str:
    """User or service text for an element that renders Markdown, shown exactly as typed:
    no link, image, HTML, emphasis, heading, list, table, LaTeX or colour in it takes effect."""
    s = "" if text is None else str(text)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _MD_INLINE.sub(r"\\\1", s)
    s = _MD_LINE_START.sub(
        lambda m: (
            m.group(1) + ("\\" + m.group(2) if not m.group(2)[0].isdigit() else m.group(2) + "\\")
        ),
        s,
    )
    # Leading spaces would make an indented code block; a line break stays a line break.
    return "  \n".join(line.lstrip(" \t") for line in s.split("\n"))


# ------------------------------------------------------------------ secrets in log records


def redact_any_case(text: str, secrets: Iterable[str], mask: str = "•••") -> str:
    """Every occurrence of each secret, in any letter case, replaced by the mask."""
    for v in sorted({v for v in secrets if v}, key=len, reverse=True):
        text = re.sub(re.escape(v), mask, text, flags=re.IGNORECASE)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that removes every secret (in any case) from a record's message and
    arguments, and from an attached traceback's text. ``secrets`` is called for each record,
    so keys loaded after the filter was installed are covered too."""

    def __init__(self, secrets: Callable[[], Iterable[str]]):
        super().__init__("foxpipe-redact")
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            values = [v for v in self._secrets() if v]
        except Exception:  # never lose a log line over the filter itself
            values = []
        if not values:
            return True
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact_any_case(message, values)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_any_case(record.exc_text, values)
            record.exc_info = None
        return True


_secrets_lock = threading.Lock()
_SECRETS: set[str] = set()
_installed = False


def register_secrets(values: Iterable[str]) -> None:
    """Secrets the process-wide log redaction removes from every record from now on."""
    with _secrets_lock:
        _SECRETS.update(v for v in values if v)


def known_secrets() -> list[str]:
    with _secrets_lock:
        return list(_SECRETS)


LOG_FILTER = RedactingFilter(known_secrets)


def install_log_redaction() -> None:
    """Redact every log record of the process, whatever its logger or handler: the filter
    runs as each record is made (a filter on a logger alone would miss the records of its
    child loggers), and sits on the root logger's handlers too. Idempotent."""
    global _installed
    with _secrets_lock:
        if not _installed:
            make_record = logging.getLogRecordFactory()

            def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = make_record(*args, **kwargs)
                LOG_FILTER.filter(record)
                return record

            logging.setLogRecordFactory(redacted_record)
            _installed = True
    for logger in (logging.getLogger(), logging.getLogger("foxpipe")):
        logger.addFilter(LOG_FILTER)
        for handler in logger.handlers:
            handler.addFilter(LOG_FILTER)
