"""The department directory: role + place -> the concrete body that handles the case (data in directory.yaml).

Rules name a role (城管, 住建 …). The directory knows the province's prefecture cities, their districts,
counties and county-level cities, and which bodies each has. Nothing is guessed: an unknown role or place is
a `ResolutionError` (the router sends the case to the manual dispatch queue with its message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Level = Literal["city", "district", "county", "county_city"]
LEVELS: tuple[Level, ...] = ("city", "district", "county", "county_city")
_PLACE_CODE = re.compile(r"^[A-Z]\d{0,2}[区县市]$")


class RoleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1, description="Name of the body after the place code, e.g. 城市管理局.")
    names: dict[Level, str] = Field(default_factory=dict, description="Per-level names where they differ.")
    levels: list[Level] = Field(default_factory=lambda: list(LEVELS), description="Levels that have this body.")
    aliases: list[str] = Field(default_factory=list, description="Other names replies use (城管局 …).")

    def name_at(self, level: Level) -> str:
        return self.names.get(level, self.name)


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    absent: bool = False


class DirectorySpec(BaseModel):
    """The YAML file, as written."""

    model_config = ConfigDict(extra="forbid")
    province: str
    home_city: str
    missing_place: Literal["home_city", "manual"] = "manual"
    roles: dict[str, RoleSpec]
    cities: dict[str, list[str]]
    place_aliases: dict[str, str] = Field(default_factory=dict)
    overrides: dict[str, Override] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> DirectorySpec:
        problems: list[str] = []
        seen: dict[str, str] = {}
        for city, places in self.cities.items():
            if not re.fullmatch(r"[A-Z]市", city):
                problems.append(f"cities: {city!r} is not a prefecture city code like A市")
            for place in places:
                if not _PLACE_CODE.match(place) or place[0] != city[0]:
                    problems.append(f"cities.{city}: {place!r} is not one of its place codes")
                if place in seen:
                    problems.append(f"cities.{city}: {place!r} is also listed under {seen[place]}")
                seen[place] = city
        known = set(seen) | set(self.cities)
        if self.home_city not in self.cities:
            problems.append(f"home_city: {self.home_city!r} is not in cities")
        for alias, target in self.place_aliases.items():
            if target not in known:
                problems.append(f"place_aliases.{alias}: {target!r} is not a known place")
        role_ids: dict[str, str] = {}
        for role, spec in self.roles.items():
            if spec.id in role_ids:
                problems.append(f"roles.{role}: id {spec.id!r} is also used by {role_ids[spec.id]}")
            role_ids[spec.id] = role
            if not spec.levels:
                problems.append(f"roles.{role}: levels is empty")
        for key in self.overrides:
            place, _, role = key.partition(".")
            if place not in known or role not in self.roles:
                problems.append(f"overrides.{key}: expected <known place>.<known role>")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class Place:
    code: str
    level: Level
    city: str  # the prefecture city it belongs to (itself for a city)


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    role: str
    place: str
    level: Level


class ResolutionError(Exception):
    """No body for this role and place in the directory: the case needs a dispatcher."""


@dataclass(frozen=True)
class Resolution:
    department: Department
    how: str  # why this body: "district body", "city body (role has no district bodies)" …


def _level_of(code: str, is_city: bool) -> Level:
    if is_city:
        return "city"
    return {"区": "district", "县": "county", "市": "county_city"}[code[-1]]  # type: ignore[return-value]


class Directory:
    def __init__(self, spec: DirectorySpec) -> None:
        self.spec = spec
        self.places: dict[str, Place] = {}
        for city, codes in spec.cities.items():
            self.places[city] = Place(city, "city", city)
            for code in codes:
                self.places[code] = Place(code, _level_of(code, False), city)
        self.departments: dict[tuple[str, str], Department] = {}
        for code, place in self.places.items():
            for role, role_spec in spec.roles.items():
                if place.level not in role_spec.levels:
                    continue
                override = spec.overrides.get(f"{code}.{role}")
                if override and override.absent:
                    continue
                name = override.name if override and override.name else f"{code}{role_spec.name_at(place.level)}"
                self.departments[(code, role)] = Department(
                    id=f"{code}.{role_spec.id}", name=name, role=role, place=code, level=place.level
                )

    @property
    def roles(self) -> dict[str, RoleSpec]:
        return self.spec.roles

    @cached_property
    def by_name(self) -> dict[str, Department]:
        return {d.name: d for d in self.departments.values()}

    @cached_property
    def by_id(self) -> dict[str, Department]:
        return {d.id: d for d in self.departments.values()}

    def place(self, code: str | None) -> Place | None:
        if code is None:
            return None
        return self.places.get(self.spec.place_aliases.get(code, code))

    def city_of(self, code: str | None) -> str | None:
        place = self.place(code)
        return place.city if place else None

    def resolve(self, role: str, place_code: str | None, scope: Literal["district", "city"] = "district") -> Resolution:
        """The body for `role` at `place_code`; raises ResolutionError with the reason when there is none."""
        role_spec = self.spec.roles.get(role)
        if role_spec is None:
            raise ResolutionError(f"role {role!r} is not in the department directory")
        notes: list[str] = []
        if place_code is None:
            if self.spec.missing_place != "home_city":
                raise ResolutionError("the case names no district or city, and the directory has no default")
            place = self.places[self.spec.home_city]
            notes.append(f"no place in the case: home city {self.spec.home_city} (directory missing_place)")
        else:
            found = self.place(place_code)
            if found is None:
                raise ResolutionError(f"place {place_code!r} is not in the department directory")
            place = found
            if found.code != place_code:
                notes.append(f"{place_code} read as {found.code} (directory place_aliases)")
        if scope == "city" and place.level != "city":
            notes.append(f"city-level rule: {place.city} body for {place.code}")
            place = self.places[place.city]
        elif place.level not in role_spec.levels:
            notes.append(f"{role} has no {place.level} bodies: {place.city} body for {place.code}")
            place = self.places[place.city]
        department = self.departments.get((place.code, role))
        if department is None:
            raise ResolutionError(f"the directory has no {role} body for {place.code}")
        how = f"{place.level} body" + (f" ({'; '.join(notes)})" if notes else "")
        return Resolution(department, how)

    # --- reading department names in official replies ---------------------------------------------------

    @cached_property
    def _mention_pattern(self) -> tuple[re.Pattern[str], dict[str, str]]:
        names: dict[str, str] = {}
        for role, spec in self.spec.roles.items():
            for name in [spec.name, *spec.names.values(), *spec.aliases]:
                names.setdefault(name, role)
        alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        pattern = re.compile(rf"(?P<place>[A-Z]\d{{1,2}}[区县市]|[A-Z]市|[市区县])(?P<body>{alternation})")
        return pattern, names

    def mentions(self, text: str, place_code: str | None) -> list[Department]:
        """Departments named in a text ("A7县教育局", "市公安局", "区住建局" …), in order, without repeats.

        A bare 市/区/县 prefix is read relative to `place_code` (the case's district or city); a mention that
        cannot be placed, or names a body the directory does not have, is skipped.
        """
        found: list[Department] = []
        for _, department in self.find_mentions(text, place_code):
            if department not in found:
                found.append(department)
        return found

    def find_mentions(self, text: str, place_code: str | None) -> list[tuple[int, Department]]:
        """Every department mention with its position in the text."""
        pattern, alias_roles = self._mention_pattern
        home = self.place(place_code)
        found: list[tuple[int, Department]] = []
        for match in pattern.finditer(text):
            role = alias_roles[match.group("body")]
            prefix = match.group("place")
            code: str | None
            if len(prefix) > 1:
                code = prefix
            elif home is None:
                code = None
            elif prefix == "市":
                code = home.city
            else:
                code = home.code if home.code.endswith(prefix) else None
            if code is None:
                continue
            try:
                found.append((match.start(), self.resolve(role, code).department))
            except ResolutionError:
                continue
        return found
