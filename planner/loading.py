"""Bounded reading of a stack file: YAML parsed event by event into plain values, with limits.

A stack file comes from a person or a pull request, so reading it must stay small and fast whatever it holds.
PyYAML's own loaders compose the whole node graph recursively (1,000 levels: RecursionError; 100,000: a crash in
the C composer) and leave aliases unbounded (a 563-byte "billion laughs" file names 10^9 values that every later
walk, pydantic's included, would visit). Here the parser's events (an iterative state machine, C when available)
are turned into values directly, and each of these stops the reading with the file, line and column:

- the file is larger than MAX_FILE_BYTES (read is refused before the file is read);
- collections nest deeper than MAX_DEPTH;
- the values, counting every alias as the copy it stands for, exceed MAX_VALUES (an alias bomb ends here after a
  few aliases, in microseconds, because each alias adds the size of what it names);
- a number is longer than MAX_NUMBER_CHARS (Python refuses ints over 4,300 digits with a traceback);
- a mapping repeats a key (Pulumi's own YAML parser refuses duplicate keys; PyYAML silently keeps the last);
- a tag is not one of YAML's standard scalar and collection tags (no !!python/..., no custom tags).

Merge keys (`<<: *defaults`) work as in YAML 1.1: explicit keys win over merged ones.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

MAX_FILE_BYTES = 4 * 1024 * 1024  # a 1,000-model stack is about 0.5 MB
MAX_DEPTH = 64  # a stack file nests about 6 deep (config > key > models > entry > vllm > architecture)
MAX_VALUES = 500_000  # a 1,000-model stack holds about 30,000
MAX_NUMBER_CHARS = 64

_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()
TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "binary", "merge")}
COLLECTION_TAGS = {None, "!", TAG + "map", TAG + "seq"}
NUMBER_TAGS = {TAG + "int", TAG + "float"}


class StackFileError(Exception):
    """The file cannot be read within the limits; `where` is PATH:LINE:COLUMN (or PATH), the message says what."""

    def __init__(self, where: str, message: str, path: str | None = None) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.path = path or where


@dataclass
class _Collection:
    value: dict[Any, Any] | list[Any]
    anchor: str | None
    start: int  # the value count when it opened: its own size is the count at its end minus this
    mark: Any  # where it starts
    key: Any = None
    has_key: bool = False
    key_mark: Any = None
    lines: dict[Any, int] = field(default_factory=dict)  # key -> line it was first written on
    merges: list[dict[Any, Any]] = field(default_factory=list)


class _Builder:
    """Values from parser events, within the limits. One instance per file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stack: list[_Collection] = []
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, how many values it stands for)
        self.count = 0
        self.document: Any = None
        self.documents = 0

    def fail(self, mark: Any, message: str) -> StackFileError:
        where = f"{self.path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(self.path)
        return StackFileError(where, message, str(self.path))

    def grow(self, values: int, mark: Any, what: str) -> None:
        self.count += values
        if self.count > MAX_VALUES:
            raise self.fail(mark, f"{what} would make the file hold more than {MAX_VALUES:,} values (aliases count as the "
                            "copies they stand for: is it an alias bomb?). A stack file needs far fewer; remove the "
                            "aliases or split the file.")

    # ------------------------------------------------------------------------------------------- events

    def feed(self, event: yaml.Event) -> None:
        handler = getattr(self, "on_" + type(event).__name__, None)
        if handler is not None:
            handler(event)

    def on_DocumentStartEvent(self, event: yaml.DocumentStartEvent) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.fail(event.start_mark, "a second YAML document (---): a stack file is one document. Remove it.")

    def on_ScalarEvent(self, event: yaml.ScalarEvent) -> None:
        tag = event.tag
        if tag in (None, "!"):
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag not in SCALAR_TAGS:
            raise self.fail(event.start_mark, f"tag {event.tag} is not allowed in a stack file; write the plain value.")
        if tag in NUMBER_TAGS and len(event.value) > MAX_NUMBER_CHARS:
            raise self.fail(event.start_mark, f"a number of {len(event.value):,} characters (at most "
                            f"{MAX_NUMBER_CHARS}). Quote it if it is text, or write the real value.")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        value = _MERGE if tag == TAG + "merge" else SafeConstructor.yaml_constructors[tag](_CONSTRUCTOR, node)
        self.grow(1, event.start_mark, "its values")
        self.add(value, event.anchor, 1, event.start_mark)

    def on_AliasEvent(self, event: yaml.AliasEvent) -> None:
        if event.anchor not in self.anchors:
            raise self.fail(event.start_mark, f"alias *{event.anchor} names no anchor &{event.anchor} above it.")
        value, size = self.anchors[event.anchor]
        self.grow(size, event.start_mark, f"alias *{event.anchor} ({size:,} values each time)")
        self.add(value, None, size, event.start_mark)

    def open(self, event: yaml.CollectionStartEvent, value: dict[Any, Any] | list[Any]) -> None:
        if event.tag not in COLLECTION_TAGS:
            raise self.fail(event.start_mark, f"tag {event.tag} is not allowed in a stack file; remove it.")
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(event.start_mark, f"nested more than {MAX_DEPTH} levels deep; a stack file needs about 6. "
                            "Check the indentation and brackets there.")
        self.grow(1, event.start_mark, "its values")
        self.stack.append(_Collection(value, event.anchor, self.count, event.start_mark))

    def on_MappingStartEvent(self, event: yaml.MappingStartEvent) -> None:
        self.open(event, {})

    def on_SequenceStartEvent(self, event: yaml.SequenceStartEvent) -> None:
        self.open(event, [])

    def on_MappingEndEvent(self, _event: yaml.MappingEndEvent) -> None:
        top = self.stack.pop()
        assert isinstance(top.value, dict)
        for source in top.merges:  # YAML 1.1 merge: explicit keys win, then the first source that has the key
            for key, value in source.items():
                top.value.setdefault(key, value)
        self.add(top.value, top.anchor, self.count - top.start + 1, top.mark)

    def on_SequenceEndEvent(self, _event: yaml.SequenceEndEvent) -> None:
        top = self.stack.pop()
        self.add(top.value, top.anchor, self.count - top.start + 1, top.mark)

    # ------------------------------------------------------------------------------------------- placing values

    def add(self, value: Any, anchor: str | None, size: int, mark: Any) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.document = value
            return
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            parent.value.append(value)
        elif not parent.has_key:
            self.take_key(parent, value, mark)
        else:
            self.put(parent, value, mark)

    def take_key(self, parent: _Collection, key: Any, mark: Any) -> None:
        if isinstance(key, (dict, list)):
            raise self.fail(mark, "a mapping key must be a plain value (a name), not a list or mapping.")
        parent.key, parent.has_key, parent.key_mark = key, True, mark

    def put(self, parent: _Collection, value: Any, mark: Any) -> None:
        assert isinstance(parent.value, dict)
        key, parent.has_key = parent.key, False
        if key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                raise self.fail(mark, "a merge key (<<) takes a mapping or a list of mappings (usually *anchor).")
            parent.merges.extend(sources)
            return
        if key in parent.lines:
            raise self.fail(parent.key_mark, f"duplicate key {_short(key)} (first on line {parent.lines[key]}); Pulumi refuses "
                            "a stack file with a key written twice. Keep one of them.")
        parent.lines[key] = parent.key_mark.line + 1
        parent.value[key] = value


class _Merge:
    """The `<<` merge key."""

    def __repr__(self) -> str:
        return "<<"


_MERGE = _Merge()


def _short(key: Any) -> str:
    text = repr(key) if isinstance(key, (str, int, float, bool, datetime.date)) or key is None else type(key).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _events(text: str) -> Iterator[yaml.Event]:
    loader = _PARSER(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


def parse_yaml(text: str, path: Path) -> Any:
    """The document's value (None when empty). Raises StackFileError for a syntax error or a limit, with the place."""
    builder = _Builder(path)
    try:
        for event in _events(text):
            builder.feed(event)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise builder.fail(mark, f"not valid YAML: {problem}. Fix the indentation or quoting there.") from None
    return builder.document


def stack_name_from_path(path: Path) -> str:
    """Pulumi.<stack>.yaml -> <stack>; any other file name -> its stem."""
    match = re.match(r"^Pulumi\.(.+)\.ya?ml$", path.name)
    return match.group(1) if match else path.stem


def read_stack_document(path: Path) -> dict[Any, Any]:
    """A Pulumi stack file (or a bare mapping of kindo-models keys) as a mapping, bounded. This needs only PyYAML,
    so a file that cannot be read is refused before the schema and the planner are even imported."""
    document = read_yaml_file(path)
    if document is None:
        raise StackFileError(str(path), "the file is empty. It needs a `config:` mapping with kindo-models: keys.")
    if not isinstance(document, dict):
        raise StackFileError(str(path), f"the top level must be a mapping (`config:` ...), not a "
                             f"{type(document).__name__}.")
    return document


def read_yaml_file(path: Path) -> Any:
    """Read and parse a stack file within the limits; StackFileError names the file (and line) otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StackFileError(str(path), f"the file is {size:,} bytes; a stack file is read up to "
                                 f"{MAX_FILE_BYTES:,} bytes. Is it the right file?")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # the file may grow after stat()
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise StackFileError(str(path), "no such file. Create it, or name an existing stack with --stack.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StackFileError(str(path), f"cannot be read: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise StackFileError(str(path), f"the file is larger than {MAX_FILE_BYTES:,} bytes. Is it the right file?")
    return parse_yaml(text, path)
