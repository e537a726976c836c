"""OVAL definitions documents (goval-parser's model, read the way claircore's ovalutil uses it).

Reading is two streaming passes over a plain-XML file (see fetch.py for getting one), each
element cleared once used, so memory holds only compact lookup tables: pass one collects tests,
objects, states and variables (they follow the definitions in the document), pass two yields
the definitions one at a time. Tests, objects and states are kept generically (kind = local tag
name, fields by child name), so rpminfo, dpkginfo and any other family resolve alike. Malformed
or truncated XML raises FeedError naming the feed, line and column.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from clair_common.models import format_time
from clair_matcher.updaters.base import FeedError


# -- document model ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    """One child of an object or state: `<evr datatype="evr_string" operation="less than">`."""

    body: str = ""
    operation: str = "equals"  # OVAL's default operation
    datatype: str = ""
    var_ref: str = ""
    attrs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Test:
    id: str
    kind: str  # local tag name, e.g. rpminfo_test
    comment: str
    check: str
    object_refs: tuple[str, ...]
    state_refs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Item:
    """An object or a state: its kind (rpminfo_state, dpkginfo_object...) and fields by name."""

    id: str
    kind: str
    fields: dict[str, Field]

    def get(self, name: str) -> Field | None:
        return self.fields.get(name)


@dataclass(frozen=True, slots=True)
class Variable:
    id: str
    kind: str  # constant_variable, local_variable, ...
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Criterion:
    test_ref: str
    comment: str = ""
    negate: bool = False


@dataclass(frozen=True, slots=True)
class ExtendDefinition:
    definition_ref: str
    comment: str = ""
    negate: bool = False


@dataclass(slots=True)
class Criteria:
    operator: str = "AND"
    negate: bool = False
    comment: str = ""
    children: list[Criteria | Criterion | ExtendDefinition] = field(default_factory=list)

    @property
    def criterias(self) -> list[Criteria]:
        return [c for c in self.children if isinstance(c, Criteria)]

    @property
    def criterions(self) -> list[Criterion]:
        return [c for c in self.children if isinstance(c, Criterion)]

    def walk(self) -> Iterator[Criterion]:
        """Every criterion, nested criteria first, then this node's (claircore's order)."""
        for sub in self.criterias:
            yield from sub.walk()
        yield from self.criterions


@dataclass(frozen=True, slots=True)
class Reference:
    source: str
    ref_id: str
    ref_url: str


@dataclass(frozen=True, slots=True)
class Cve:
    name: str
    href: str
    attrs: dict[str, str]  # cvss2, cvss3, priority, public, impact...


@dataclass(slots=True)
class Advisory:
    severity: str = ""
    issued: str = ""  # the `date` attribute as written
    updated: str = ""
    cves: list[Cve] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)  # <ref> texts
    bugs: list[str] = field(default_factory=list)  # <bug> texts, <bugzilla href>
    affected_cpes: list[str] = field(default_factory=list)
    other: dict[str, str] = field(default_factory=dict)  # any other simple child, by name


@dataclass(frozen=True, slots=True)
class Affected:
    family: str
    platforms: tuple[str, ...]
    products: tuple[str, ...]


@dataclass(slots=True)
class Definition:
    id: str
    def_class: str
    title: str = ""
    description: str = ""
    affected: list[Affected] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    advisory: Advisory = field(default_factory=Advisory)
    criteria: Criteria = field(default_factory=Criteria)

    @property
    def platforms(self) -> list[str]:
        return [p for a in self.affected for p in a.platforms]


def links(defn: Definition) -> str:
    """ovalutil.Links: reference URLs, advisory refs, bugs, CVE hrefs; blanks and repeats out."""
    urls = [r.ref_url for r in defn.references]
    urls += defn.advisory.refs + defn.advisory.bugs + [c.href for c in defn.advisory.cves]
    return " ".join(dict.fromkeys(u for u in urls if u))


_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d")


def issued_time(value: str) -> str:
    """An advisory date as Clair's RFC 3339 time; the zero time when absent or unreadable."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1]
    for fmt in _DATE_FORMATS:
        try:
            return format_time(datetime.strptime(text, fmt).replace(tzinfo=UTC))
        except ValueError:
            continue
    return format_time(None)


# -- streaming reader --------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _text(el: ET.Element) -> str:
    return el.text or ""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def _field(el: ET.Element) -> Field:
    attrs = dict(el.attrib)
    return Field(
        body=_text(el),
        operation=attrs.pop("operation", "equals"),
        datatype=attrs.pop("datatype", ""),
        var_ref=attrs.pop("var_ref", ""),
        attrs=tuple(sorted(attrs.items())),
    )


def _test(el: ET.Element) -> Test:
    objects, states = [], []
    for child in el:
        name = _local(child.tag)
        if name == "object":
            objects.append(child.get("object_ref", ""))
        elif name == "state":
            states.append(child.get("state_ref", ""))
    return Test(
        id=el.get("id", ""),
        kind=_local(el.tag),
        comment=el.get("comment", ""),
        check=el.get("check", ""),
        object_refs=tuple(objects),
        state_refs=tuple(states),
    )


def _item(el: ET.Element) -> Item:
    fields: dict[str, Field] = {}
    for child in el:
        fields.setdefault(_local(child.tag), _field(child))  # first one wins, as in goval
    return Item(id=el.get("id", ""), kind=_local(el.tag), fields=fields)


def _variable(el: ET.Element) -> Variable:
    values = tuple(_text(c) for c in el if _local(c.tag) == "value")
    return Variable(id=el.get("id", ""), kind=_local(el.tag), values=values)


def _criteria(el: ET.Element) -> Criteria:
    node = Criteria(
        operator=el.get("operator", "AND"),
        negate=_truthy(el.get("negate")),
        comment=el.get("comment", ""),
    )
    for child in el:
        name = _local(child.tag)
        negate = _truthy(child.get("negate"))
        if name == "criteria":
            node.children.append(_criteria(child))
        elif name == "criterion":
            node.children.append(
                Criterion(child.get("test_ref", ""), child.get("comment", ""), negate)
            )
        elif name == "extend_definition":
            node.children.append(
                ExtendDefinition(child.get("definition_ref", ""), child.get("comment", ""), negate)
            )
    return node


def _advisory(el: ET.Element) -> Advisory:
    adv = Advisory()
    for child in el:
        name = _local(child.tag)
        if name == "severity":
            adv.severity = _text(child)
        elif name in ("issued", "updated"):
            setattr(adv, name, child.get("date", ""))
        elif name == "cve":
            attrs = {k: v for k, v in child.attrib.items() if k != "href"}
            adv.cves.append(Cve(_text(child), child.get("href", ""), attrs))
        elif name == "ref":
            adv.refs.append(_text(child).strip())
        elif name == "bug":
            adv.bugs.append(_text(child).strip())
        elif name == "bugzilla":
            adv.bugs.append(child.get("href", ""))
        elif name == "affected_cpe_list":
            adv.affected_cpes.extend(_text(c).strip() for c in child if _local(c.tag) == "cpe")
        elif len(child) == 0:
            adv.other.setdefault(name, _text(child))
    return adv


def _definition(el: ET.Element) -> Definition:
    defn = Definition(id=el.get("id", ""), def_class=el.get("class", ""))
    for child in el:
        name = _local(child.tag)
        if name == "criteria":
            defn.criteria = _criteria(child)
        elif name != "metadata":
            continue
        for meta in child:
            tag = _local(meta.tag)
            if tag == "title":
                defn.title = _text(meta)  # verbatim, whitespace included, as Go's decoder
            elif tag == "description":
                defn.description = _text(meta)
            elif tag == "affected":
                platforms = tuple(_text(p) for p in meta if _local(p.tag) == "platform")
                products = tuple(_text(p) for p in meta if _local(p.tag) == "product")
                defn.affected.append(Affected(meta.get("family", ""), platforms, products))
            elif tag == "reference":
                defn.references.append(
                    Reference(
                        meta.get("source", ""), meta.get("ref_id", ""), meta.get("ref_url", "")
                    )
                )
            elif tag == "advisory":
                defn.advisory = _advisory(meta)
    return defn


_SECTIONS = {"tests", "objects", "states", "variables"}


def _events(path: Path, feed: str) -> Generator[tuple[str, ET.Element], None, None]:
    """iterparse start/end events; a parse error becomes FeedError with line and column."""
    try:
        with path.open("rb") as fp:
            yield from ET.iterparse(fp, events=("start", "end"))
    except ET.ParseError as exc:
        line, column = exc.position
        raise FeedError(f"{feed}: malformed XML at line {line}, column {column}") from None


class OvalDocument:
    """The lookup tables of one document; `definitions()` streams the definitions."""

    def __init__(self, path: Path, feed: str) -> None:
        self.path = path
        self.feed = feed
        self.tests: dict[str, Test] = {}
        self.objects: dict[str, Item] = {}
        self.states: dict[str, Item] = {}
        self.variables: dict[str, Variable] = {}
        self.definition_count = 0
        self._index()

    def _index(self) -> None:
        stack: list[ET.Element] = []
        saw_root = False
        for event, el in _events(self.path, self.feed):
            if event == "start":
                stack.append(el)
                continue
            stack.pop()
            if len(stack) != 2:
                if len(stack) == 0:
                    saw_root = _local(el.tag) == "oval_definitions"
                continue
            section = _local(stack[1].tag)
            if section == "tests":
                test = _test(el)
                self.tests[test.id] = test
            elif section == "objects":
                obj = _item(el)
                self.objects[obj.id] = obj
            elif section == "states":
                state = _item(el)
                self.states[state.id] = state
            elif section == "variables":
                var = _variable(el)
                self.variables[var.id] = var
            elif section == "definitions" and _local(el.tag) == "definition":
                self.definition_count += 1
            stack[1].clear()  # the finished child: memory stays bounded
        if not saw_root:
            raise FeedError(f"{self.feed}: not an OVAL definitions document")

    def definitions(self) -> Iterator[Definition]:
        """Each `<definition>` in document order; stops reading after `</definitions>`."""
        with contextlib.closing(_events(self.path, self.feed)) as events:
            yield from self._definitions(events)

    @staticmethod
    def _definitions(events: Iterator[tuple[str, ET.Element]]) -> Iterator[Definition]:
        depth = 0
        section: ET.Element | None = None
        for event, el in events:
            if event == "start":
                depth += 1
                if depth == 2:
                    section = el
                continue
            depth -= 1
            if depth == 1 and section is not None and _local(section.tag) == "definitions":
                return
            if depth == 2 and section is not None:
                if _local(section.tag) == "definitions" and _local(el.tag) == "definition":
                    yield _definition(el)
                section.clear()

    # -- lookups (None when dangling; callers skip such criteria, as ovalutil does) --------
    def test(self, ref: str) -> Test | None:
        return self.tests.get(ref)

    def object(self, ref: str) -> Item | None:
        return self.objects.get(ref)

    def state(self, ref: str) -> Item | None:
        return self.states.get(ref)

    def variable(self, ref: str) -> Variable | None:
        return self.variables.get(ref)

    def values(self, item_field: Field) -> list[str]:
        """A field's value(s): its body, or a constant variable's values when it has a
        var_ref (Ubuntu names a package's binaries that way); none for a dangling ref."""
        if not item_field.var_ref:
            return [item_field.body]
        var = self.variables.get(item_field.var_ref)
        return list(var.values) if var is not None else []
