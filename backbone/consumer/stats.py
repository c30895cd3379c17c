"""What a consumer runner did: counts per batch, added up over the run and logged."""

from dataclasses import dataclass, fields


@dataclass
class RunStats:
    records: int = 0
    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    parked: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def add(self, other: "RunStats") -> None:
        for stat in fields(self):
            setattr(self, stat.name, getattr(self, stat.name) + getattr(other, stat.name))

    def __str__(self) -> str:
        return (
            f"handled {self.handled}, duplicates {self.duplicates}, skipped {self.skipped}, "
            f"parked {self.parked}, dead-lettered {self.dead_lettered}, retries {self.retries}"
        )
