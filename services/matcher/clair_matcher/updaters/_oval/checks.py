"""The package checks of an OVAL definition, shared by the rpminfo and dpkginfo readers.

ovalutil walks every criterion (nested ones first) and keeps those whose test is a
`<info>_test` on a `<info>_object` with a `name`; a test without a state is a plain "is
installed" check, a state must be a `<info>_state` with an `evr`. Any dangling reference, or
an item of another kind, skips the criterion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from clair_matcher.updaters._oval.document import Definition, Field, OvalDocument

# OVAL operation → Clair's ArchOp text; anything else is no operation.
_ARCH_OPS = {"equals": "equals", "not equal": "not equals", "pattern match": "pattern match"}


class PackageCheck(NamedTuple):
    """One kept criterion: the object's `name`, and from its state the `evr` (None when the
    test has no state) and the arch with its ArchOp ("" when the state has none)."""

    name: Field
    evr: Field | None
    arch: str
    arch_op: str


def package_checks(doc: OvalDocument, defn: Definition, info: str) -> Iterator[PackageCheck]:
    """The `info` ("rpminfo", "dpkginfo") checks of `defn`, in ovalutil's order."""
    for criterion in defn.criteria.walk():
        test = doc.test(criterion.test_ref)
        if test is None or test.kind != f"{info}_test" or not test.object_refs:
            continue
        obj = doc.object(test.object_refs[0])
        if obj is None or obj.kind != f"{info}_object":
            continue
        name = obj.get("name")
        if name is None:
            continue  # no package to match against
        if not test.state_refs:
            yield PackageCheck(name, None, "", "")
            continue
        state = doc.state(test.state_refs[0])
        if state is None or state.kind != f"{info}_state":
            continue
        evr = state.get("evr")
        if evr is None:
            continue  # not a package version check
        arch = state.get("arch")
        if arch is None:
            yield PackageCheck(name, evr, "", "")
        else:
            yield PackageCheck(name, evr, arch.body, _ARCH_OPS.get(arch.operation, ""))
