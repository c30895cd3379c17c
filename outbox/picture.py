"""The story of an order laid out as a picture: lanes, boxes, arrows and marks, in pixels.

`picture()` reads the story (outbox/story.py) and the dead letters of its events, and returns
where everything goes; the template outbox/story.html only draws what it is given, so the
layout is checked in Python and the drawing stays a plain, server-rendered SVG.

One lane per context (the event's source), in the order the contexts first appear; one column
per event, left to right in the order the events were written, so time runs along the lanes.
"""

from dataclasses import dataclass, replace
from datetime import datetime

from backbone.models import DeadLetter, DeadLetterStatus

from .story import StoryEntry, story

LABEL_WIDTH = 90  # the lane names, left of the first column
COLUMN_WIDTH = 200
BOX_WIDTH = 184
BOX_TOP = 22  # room above the boxes for arrows that jump over a box of their own lane
BOX_TEXT_HEIGHT = 54  # type, place and time since the previous step
MARK_HEIGHT = 16  # one line per consumer group's mark below them
LANE_HEIGHT = 122
TOP = 10


@dataclass(frozen=True)
class Mark:
    """What one consumer group did with the event: handled it, or is stuck on it."""

    context: str
    state: str  # "handled", "retried" (a dead letter replayed) or "dead-lettered"
    text: str
    y: int = 0  # the baseline of its line in the box, set when the box is placed

    @property
    def warning(self) -> bool:
        return self.state != "handled"


@dataclass(frozen=True)
class Box:
    number: int  # 1-based, as in the story API and `make demo`
    event_id: str
    caused_by: str | None  # the causing event's id
    event_type: str
    lane: str
    place: str  # topic/partition@offset, or why there is none yet
    since_previous: str  # "" for the first event
    x: int
    y: int
    marks: tuple[Mark, ...]
    height: int
    width: int = BOX_WIDTH

    @property
    def warning(self) -> bool:
        return any(mark.warning for mark in self.marks)


@dataclass(frozen=True)
class Arrow:
    """From cause to effect, as an SVG path: edge to edge, or over the boxes between them when
    both are in one lane."""

    cause: int
    effect: int
    path: str


@dataclass(frozen=True)
class Lane:
    name: str
    y: int
    height: int = LANE_HEIGHT


@dataclass(frozen=True)
class Picture:
    correlation_id: str
    lanes: tuple[Lane, ...]
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]
    width: int
    height: int


def picture(correlation_id: str, *, subject: str | None = None) -> Picture:
    """Lay out the story of `correlation_id` (only `subject`'s events and their effects, if given)."""
    entries = story(correlation_id, subject=subject)
    letters = _dead_letters([entry.event_id for entry in entries])
    lane_names = list(dict.fromkeys(_lane_of(entry) for entry in entries))
    lanes = tuple(Lane(name=name, y=TOP + i * LANE_HEIGHT) for i, name in enumerate(lane_names))
    lane_y = {lane.name: lane.y for lane in lanes}
    boxes = tuple(
        _box(number, entry, previous, lane_y[_lane_of(entry)], letters.get(entry.event_id, []))
        for number, (entry, previous) in enumerate(zip(entries, [None, *entries], strict=False), start=1)
    )
    return Picture(
        correlation_id=correlation_id,
        lanes=lanes,
        boxes=boxes,
        arrows=_arrows(boxes),
        width=LABEL_WIDTH + max(len(boxes), 1) * COLUMN_WIDTH,
        height=TOP + max(len(lanes), 1) * LANE_HEIGHT,
    )


def _lane_of(entry: StoryEntry) -> str:
    # The type names its context ("stock.StockReserved"): the context that wrote the event.
    return entry.event_type.split(".", 1)[0]


def _box(
    number: int, entry: StoryEntry, previous: StoryEntry | None, lane_y: int, letters: list[DeadLetter]
) -> Box:
    y = lane_y + BOX_TOP
    marks = _marks(entry, letters)
    return Box(
        number=number,
        event_id=entry.event_id,
        caused_by=entry.causation_id,
        event_type=entry.event_type.split(".", 1)[-1],
        lane=_lane_of(entry),
        place=_place(entry),
        since_previous="" if previous is None else _elapsed(previous.occurred_at, entry.occurred_at),
        x=LABEL_WIDTH + (number - 1) * COLUMN_WIDTH + (COLUMN_WIDTH - BOX_WIDTH) // 2,
        y=y,
        marks=tuple(
            replace(mark, y=y + BOX_TEXT_HEIGHT + (i + 1) * MARK_HEIGHT - 4) for i, mark in enumerate(marks)
        ),
        # A box grows with its marks up to two; a third runs just below its edge, more into the next lane.
        height=min(BOX_TEXT_HEIGHT + max(len(marks), 1) * MARK_HEIGHT + 4, LANE_HEIGHT - BOX_TOP - 6),
    )


def _place(entry: StoryEntry) -> str:
    if entry.partition is None or entry.offset is None:
        return f"{entry.topic}: not published yet"
    return f"{entry.topic}/{entry.partition}@{entry.offset}"


def _elapsed(before: datetime, after: datetime) -> str:
    seconds = (after - before).total_seconds()
    if seconds < 1:
        return f"+{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"+{seconds:.1f} s"
    return f"+{seconds / 60:.0f} min"


def _marks(entry: StoryEntry, letters: list[DeadLetter]) -> tuple[Mark, ...]:
    handled = [Mark(context=h.context, state="handled", text=f"✓ {h.context}") for h in entry.handled_by]
    stuck = [_letter_mark(letter) for letter in letters]
    # A replayed dead letter's group also has an inbox row: the warning says how it got there.
    stuck_contexts = {mark.context for mark in stuck}
    return tuple([m for m in handled if m.context not in stuck_contexts] + stuck)


def _letter_mark(letter: DeadLetter) -> Mark:
    if letter.status == DeadLetterStatus.PENDING:
        return Mark(
            context=letter.context,
            state="dead-lettered",
            text=f"✗ {letter.context}: dead letter #{letter.pk}, {letter.attempts} tries",
        )
    return Mark(
        context=letter.context,
        state="retried",
        text=f"↻ {letter.context}: dead letter #{letter.pk} {letter.status}",
    )


def _dead_letters(event_ids: list[str]) -> dict[str, list[DeadLetter]]:
    found: dict[str, list[DeadLetter]] = {}
    for letter in DeadLetter.objects.filter(event_id__in=event_ids).order_by("id"):
        found.setdefault(letter.event_id, []).append(letter)
    return found


def _arrows(boxes: tuple[Box, ...]) -> tuple[Arrow, ...]:
    by_event = {box.event_id: box for box in boxes}
    return tuple(
        Arrow(cause=cause.number, effect=effect.number, path=_path(cause, effect))
        for effect in boxes
        # None for the first event, or when its cause is outside this story.
        if (cause := by_event.get(effect.caused_by or "")) is not None
    )


def _path(cause: Box, effect: Box) -> str:
    if cause.lane == effect.lane and effect.number > cause.number + 1:
        # A straight line would cross the boxes between them: arc from top to top instead.
        x1, x2, top = cause.x + cause.width // 2, effect.x + effect.width // 2, cause.y
        return f"M{x1},{top} Q{(x1 + x2) // 2},{top - 2 * BOX_TOP + 4} {x2},{top}"
    x1, y1 = cause.x + cause.width, cause.y + cause.height // 2
    x2, y2 = effect.x, effect.y + effect.height // 2
    return f"M{x1},{y1} C{x1 + 20},{y1} {x2 - 20},{y2} {x2},{y2}"
