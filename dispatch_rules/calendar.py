"""Working days (工作日) for deadlines: weekends, statutory holidays and the weekend days made working days (调休).

12345 deadlines are counted in working days (e.g. 一般诉求 3 个工作日). The calendar is data of the rule set
(`calendar.yaml`, named by the manifest), updated each year from the State Council's holiday notice. A year
the calendar does not cover falls back to weekends only, and the decision's explanation says so.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_WORKING_DAYS = 60
MAX_SCAN_DAYS = 400  # a calendar that declares nearly every day off must not make the scan run forever


class WorkCalendar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field("", description="Where the holidays come from (the notice's title).")
    weekend: list[int] = Field(default_factory=lambda: [6, 7], description="ISO weekdays off: 6 = Sat, 7 = Sun.")
    holidays: list[date] = Field(default_factory=list, description="Days off (法定节假日 and their bridge days).")
    workdays: list[date] = Field(default_factory=list, description="Weekend days that are working days (调休).")
    covers: list[int] = Field(default_factory=list, description="Years whose holidays are listed.")

    @model_validator(mode="after")
    def _consistent(self) -> WorkCalendar:
        if any(day not in range(1, 8) for day in self.weekend):
            raise ValueError(f"weekend days are ISO weekdays 1..7, found {self.weekend}")
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"days both holiday and working day: {', '.join(d.isoformat() for d in both)}")
        listed = {d.year for d in [*self.holidays, *self.workdays]}
        if not listed <= set(self.covers):
            missing = sorted(listed - set(self.covers))
            raise ValueError(f"holidays or workdays listed for years not in covers: {missing}")
        return self

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day not in self.holidays and day.isoweekday() not in self.weekend

    def covers_year(self, year: int) -> bool:
        return year in self.covers

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """`days` working days after `start`, at the same local clock time (a case that arrives on a day off is
        counted from the next working day): a Friday 10:00 case due in 3 working days is due Wednesday 10:00."""
        if not 0 < days <= MAX_WORKING_DAYS:
            raise ValueError(f"working days must be 1..{MAX_WORKING_DAYS}, found {days}")
        moment, counted = start, 0
        for _ in range(MAX_SCAN_DAYS):
            moment += timedelta(days=1)
            counted += self.is_working_day(moment.date())
            if counted == days:
                return moment
        raise ValueError(f"no {days} working days within {MAX_SCAN_DAYS} days of {start.date()}: check the calendar")
