"""Who is asking: every query and action of the application layer takes a :class:`Caller`.

A caller is an operator id, a role and optionally a set of districts:

- ``viewer`` may read; ``operator`` may also act on alerts (ack, resolve, assign);
  ``admin`` may do what an operator does (and is what the command line runs as).
- ``districts`` None is a city-level caller: every alert, including those with no district
  (a silent lab, an orphan result). With districts, the caller sees and acts on alerts of
  those districts only; any other alert is "not found", exactly like an unknown id.

The web console builds one per signed-in account::

    caller = Caller("op-017", "operator", frozenset({"pudong"}))

and the command line one for the whole city: ``Caller.command_line("op-017")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from closedloop.schemas.identifiers import contains_raw

__all__ = ["ROLES", "Caller", "Forbidden", "Role"]

Role = Literal["viewer", "operator", "admin"]
ROLES: Final = ("viewer", "operator", "admin")
_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class Forbidden(Exception):
    """The caller's role does not allow this; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking. Build it with a checked id, role and districts (ValueError if not)."""

    operator_id: str
    role: Role
    districts: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.operator_id) or contains_raw(self.operator_id):
            raise ValueError("operator_id: 1-128 letters, digits and _ . : - (a pseudonymous "
                             "staff id, never a phone number or resident ID)")
        if self.role not in ROLES:
            raise ValueError(f"a role is one of {', '.join(ROLES)}")
        if self.districts is not None and not self.districts:
            raise ValueError("a caller limited to districts needs at least one district")

    @classmethod
    def command_line(cls, operator_id: str = "command-line") -> Caller:
        """The command line's caller: the whole city, allowed to act."""
        return cls(operator_id, "admin", None)

    @property
    def city_level(self) -> bool:
        """Sees every district, and the alerts that have none."""
        return self.districts is None

    def may_act(self) -> bool:
        return self.role in ("operator", "admin")

    def sees(self, district: str | None) -> bool:
        """Whether an alert (or report row) of ``district`` is this caller's."""
        return self.districts is None or (district is not None and district in self.districts)

    def require_action(self) -> None:
        """Raise Forbidden unless this caller may act on alerts."""
        if not self.may_act():
            raise Forbidden(f"{self.operator_id} is a {self.role}: only an operator or an admin "
                            "may act on alerts")
