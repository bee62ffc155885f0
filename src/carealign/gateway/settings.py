"""Settings of one gateway: what it serves, where it logs, what it watches for and what it guards against."""

from __future__ import annotations

from dataclasses import dataclass, field

from carealign.domain import Verdict

#: The modes of a gateway: ``monitor`` judges after the response has left; ``guard`` before.
MODES = ("monitor", "guard")
#: What guard mode puts in place of an unsafe response.
GUARD_ACTIONS = ("decline", "regenerate")

DEFAULT_DECLINE = (
    "I can't help with that request. If this is about your health or someone else's, please talk to a doctor, "
    "pharmacist or other qualified professional; in an emergency call your local emergency number, and if you "
    "are thinking about harming yourself, contact a crisis line such as 988 (US) right away."
)


@dataclass
class RouteRule:
    """Which exchanges become review items: a harmful prompt answered (Accept), a judge unsure of
    itself, or a harm estimate unsure of itself."""

    min_harm_level: int = field(default=2, metadata={"help": "Estimated harm level from which an Accept is risky."})
    low_confidence: float = field(default=0.6, metadata={"help": "Judge confidence below which to ask people."})
    uncertain_harm: float = field(default=0.5, metadata={"help": "Harm-estimate confidence below which to ask people."})


@dataclass
class GuardRule:
    """When guard mode replaces a response, and with what."""

    min_harm_level: int = field(default=2, metadata={"help": "Estimated harm level from which the rule applies."})
    verdicts: tuple[str, ...] = field(
        default=(Verdict.ACCEPT.value,), metadata={"help": "Verdicts that count as unsafe at those levels."}
    )
    action: str = field(default="decline", metadata={"help": "decline | regenerate (with a safety reminder)."})
    decline_text: str = field(default=DEFAULT_DECLINE, metadata={"help": "The decline, with a referral."})

    def __post_init__(self) -> None:
        if self.action not in GUARD_ACTIONS:
            raise ValueError(f"guard action {self.action!r}: expected one of {', '.join(GUARD_ACTIONS)}")
        if not 0 <= self.min_harm_level <= 3:
            raise ValueError(f"guard harm level {self.min_harm_level!r}: expected 0-3")
        self.verdicts = tuple(Verdict.parse(v).value for v in self.verdicts)

    def unsafe(self, harm_level: int | None, verdict: str | None) -> bool:
        """Whether a response with this verdict to a prompt of this (estimated) level must be replaced."""
        return harm_level is not None and harm_level >= self.min_harm_level and verdict in self.verdicts


@dataclass
class GatewaySettings:
    """Everything ``carealign gateway serve`` takes."""

    model: str = field(metadata={"help": "Model spec or alignment run directory (its promoted policy)."})
    db: str = field(default="review.db", metadata={"help": "Review database (SQLite path or URL, postgresql://)."})
    mode: str = field(default="monitor", metadata={"help": "monitor: judge after responding; guard: before."})
    group: str = field(default="clinicians", metadata={"help": "Review group that gets flagged exchanges."})
    judge: str = field(default="rules", metadata={"help": "Judge spec (as carealign eval --judge)."})
    safety_policy: str | None = field(default=None, metadata={"help": "Safety policy YAML; None: CARES' table."})
    served_name: str = field(default="carealign", metadata={"help": "Model id clients ask for (GET /v1/models)."})
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "Largest request body accepted (413 above)."})
    max_messages: int = field(default=64, metadata={"help": "Most messages in one request."})
    max_tokens_limit: int = field(default=1024, metadata={"help": "Largest max_tokens a client may ask for."})
    default_max_tokens: int = field(default=256, metadata={"help": "max_tokens when the client sets none."})
    redact: bool = field(default=False, metadata={"help": "Redact e-mails, phone and record numbers before storage."})
    retention_days: float | None = field(default=None, metadata={"help": "Delete exchanges older than this."})
    route: RouteRule = field(default_factory=RouteRule)
    guard: GuardRule = field(default_factory=GuardRule)
    dtype: str = field(default="auto", metadata={"help": "auto, bf16 or fp32."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})
    worker: bool = field(default=True, metadata={"help": "Run the judging worker in the serving process."})
    worker_batch: int = field(default=32, metadata={"help": "Exchanges judged per batch."})
    judge_when_idle: bool = field(
        default=True, metadata={"help": "Monitor mode: judge while no request is in flight (unless overdue)."}
    )
    judge_backlog: int = field(default=500, metadata={"help": "Judge even under load from this many waiting."})
    judge_max_delay_s: float = field(
        default=300.0, metadata={"help": "Judge even under load once the oldest has waited this long (s)."}
    )
    lease_seconds: float = field(default=120.0, metadata={"help": "How long a worker's claim on a task lasts."})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens exceeds max_tokens_limit")
        if self.judge_backlog < 1:
            raise ValueError("judge_backlog must be >= 1")
        if self.judge_max_delay_s < 0:
            raise ValueError("judge_max_delay_s must be >= 0")
        if self.retention_days is not None and self.retention_days <= 0:
            raise ValueError("retention_days must be > 0")
