"""Access review services, by sub-domain: definitions (definitions), starting runs
(instances, with the set-based snapshot of items and reviewers in snapshot) and reminding
reviewers (instances), decisions (decisions), closing and applying the results
(results), and what they share (shared). Import them from here.

Applying a denial removes the assignment through the same audited roles services an
administrator uses (ending any live activation of it).
"""

from .decisions import (
    review_item_decide,
    review_item_reset,
    review_items_accept_recommendations,
    review_items_decide,
)
from .definitions import DEFINITION_FIELDS, review_definition_create, review_definition_update
from .instances import (
    review_instance_start,
    review_instances_start_due,
    review_reminders_send_due,
)
from .results import (
    effective_decision,
    review_instance_apply,
    review_instance_end_early,
    review_instances_close_due,
)
from .shared import Decision, Outcome, ReviewError

__all__ = [
    "DEFINITION_FIELDS",
    "Decision",
    "Outcome",
    "ReviewError",
    "effective_decision",
    "review_definition_create",
    "review_definition_update",
    "review_instance_apply",
    "review_instance_end_early",
    "review_instance_start",
    "review_instances_close_due",
    "review_instances_start_due",
    "review_item_decide",
    "review_item_reset",
    "review_items_accept_recommendations",
    "review_items_decide",
    "review_reminders_send_due",
]
