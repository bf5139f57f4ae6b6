"""Pure-Python rating engine reproducing CGRateS classic ("RALs") tariff plans.

No Django, no ORM: the standard library and ``decimal`` only, so it can be used
from batch jobs, the web tier and tests alike.

Typical use::

    from tarifa.rating.engine import load_directory, rate

    plan = load_directory("/path/to/tariffplan")
    cost = rate(plan, tenant="cgrates.org", category="call", subject="1001",
                destination="1002", answer_time=answered_at, usage=timedelta(seconds=90))
    cost.cost          # Decimal
    cost.spans         # how it was priced

See :mod:`.rater` for the exact semantics and where they come from in CGRateS.
"""

from .cgrates_csv import load_directory
from .durations import (
    HOUR,
    MILLISECOND,
    MINUTE,
    SECOND,
    format_duration,
    parse_duration,
    to_units,
)
from .model import (
    ALWAYS_TIMING,
    ANY,
    MAX_COST_DISCONNECT,
    MAX_COST_FREE,
    ROUNDING_DOWN,
    ROUNDING_MIDDLE,
    ROUNDING_UP,
    Destination,
    DestinationRate,
    Rate,
    RateSlot,
    RatingError,
    RatingPlanBinding,
    RatingProfile,
    TariffPlan,
    TariffPlanError,
    Timing,
)
from .rater import (
    MAX_RECURSION_DEPTH,
    RATING_PLAN_NOT_FOUND,
    UNAUTHORIZED_DESTINATION,
    VOICE_USAGE_TYPES,
    Cost,
    Increment,
    Span,
    rate,
    round_cost,
)

__all__ = [
    "ALWAYS_TIMING",
    "ANY",
    "Cost",
    "Destination",
    "DestinationRate",
    "HOUR",
    "Increment",
    "MAX_COST_DISCONNECT",
    "MAX_COST_FREE",
    "MAX_RECURSION_DEPTH",
    "MILLISECOND",
    "MINUTE",
    "RATING_PLAN_NOT_FOUND",
    "ROUNDING_DOWN",
    "ROUNDING_MIDDLE",
    "ROUNDING_UP",
    "Rate",
    "RateSlot",
    "RatingError",
    "RatingPlanBinding",
    "RatingProfile",
    "SECOND",
    "Span",
    "TariffPlan",
    "TariffPlanError",
    "Timing",
    "UNAUTHORIZED_DESTINATION",
    "VOICE_USAGE_TYPES",
    "format_duration",
    "load_directory",
    "parse_duration",
    "rate",
    "round_cost",
    "to_units",
]
