"""The tamper-evident audit log: append-only events in a gapless hash chain."""

from collections.abc import Iterable
from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models import Q


class AppendOnlyError(Exception):
    """Raised on any attempt to edit or delete an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit events cannot be edited.")

    def bulk_update(
        self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None
    ) -> NoReturn:
        # Refused before Django opens its atomic block, so the caller's transaction survives.
        raise AppendOnlyError("Audit events cannot be edited.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("Audit events cannot be deleted.")

    def _raw_delete(self, using: str | None) -> NoReturn:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    """One state change, written by the service that made it, in the same transaction.

    Who and what are kept as static text too (``actor_label``, ``target_label``,
    ``role_label``) so the record survives renames and deletions. ``hash`` covers the
    previous event's hash and this event's canonical content; ``mac`` is that hash keyed with
    the chain key named by ``mac_key_id`` (see audit.chain). Events written before the keyed
    chain have neither and verify by their hash alone. ``chain_version`` names the encoding
    the hash covers (version 3 hashes ``details_text``, the canonical JSON of ``details``).
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"
        DENIED = "denied"

    seq = models.BigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.PROTECT,  # people are deactivated, never deleted from history
        related_name="+",
        editable=False,
        db_index=False,  # audit_event_actor_idx starts with it
    )
    actor_label = models.CharField(max_length=300, editable=False)
    action = models.CharField(max_length=64, editable=False)  # audit_event_action_idx
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS, editable=False
    )
    target_type = models.CharField(max_length=64, blank=True, editable=False)
    target_id = models.CharField(max_length=64, blank=True, editable=False)
    target_label = models.CharField(max_length=300, blank=True, editable=False)
    role_id = models.UUIDField(null=True, editable=False)
    role_label = models.CharField(max_length=300, blank=True, editable=False)
    scope = models.CharField(max_length=400, blank=True, editable=False)
    details = models.JSONField(default=dict, editable=False)
    request_id = models.CharField(max_length=64, blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, editable=False)
    user_agent = models.CharField(max_length=400, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    mac = models.CharField(max_length=64, blank=True, default="", editable=False)
    mac_key_id = models.CharField(max_length=16, blank=True, default="", editable=False)
    # How the hash encodes the content (audit.chain): 3 for events written now, 2 for those
    # written before version 3 (they keep verifying under it).
    chain_version = models.SmallIntegerField(default=3, editable=False)
    # Version 3: details as the canonical JSON text the hash covers, written once with the
    # event ("" before version 3); ``details`` must equal it read as JSON.
    details_text = models.TextField(blank=True, default="", editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_event_target_idx"),
            models.Index(fields=["role_id", "seq"], name="audit_event_role_idx"),
            # Partial where most events leave the column empty (the jobs' events: no actor, no
            # request): an index entry less for each, and the jobs append them by the 100,000.
            # "System" as the actor filter reads events by seq, most of which it keeps.
            models.Index(
                fields=["actor", "seq"], condition=Q(actor__isnull=False), name="audit_event_actor_idx"
            ),
            models.Index(fields=["request_id"], condition=~Q(request_id=""), name="audit_event_request_idx"),
            # The action filter is exact or a prefix (audit.filters): both are this one
            # index's (varchar_pattern_ops answers = as well as LIKE 'x%').
            models.Index(fields=["action"], opclasses=["varchar_pattern_ops"], name="audit_event_action_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be edited.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditChainHead(models.Model):
    """The single row holding the chain's last sequence number and hash.

    Writers lock it (SELECT ... FOR UPDATE) for the rest of their transaction: that is what
    makes the sequence gapless and the chain linear under concurrency. It also records the
    first keyed event (``keyed_from``) and the number of the newest checkpoint
    (``checkpoints``), and carries a MAC over all four under the chain key: the application's
    database role may update this row, so only the MAC tells a head moved back over a deleted
    tail (or over a deleted checkpoint) from one the portal wrote.
    """

    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    keyed_from = models.BigIntegerField(null=True, blank=True)
    checkpoints = models.BigIntegerField(default=0)
    mac = models.CharField(max_length=64, blank=True, default="")
    mac_key_id = models.CharField(max_length=16, blank=True, default="")

    def __str__(self) -> str:
        return f"audit head #{self.last_seq}"


class AuditCheckpointQuerySet(models.QuerySet["AuditCheckpoint"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit checkpoints cannot be edited.")

    def bulk_update(
        self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None
    ) -> NoReturn:
        raise AppendOnlyError("Audit checkpoints cannot be edited.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("Audit checkpoints cannot be deleted.")

    def _raw_delete(self, using: str | None) -> NoReturn:
        raise AppendOnlyError("Audit checkpoints cannot be deleted.")


class AuditCheckpoint(models.Model):
    """The chain head (last seq and hash) at one moment, signed with the audit signing key.

    Written periodically, also when nothing happened (audit.checkpoints). Each one names the
    checkpoint before it and the digest of that one's signed message, so the checkpoints form
    a chain of their own, and carries its ``number`` (1, 2, 3, … without gaps; signed, and
    recorded by the chain head, so a deleted newest checkpoint shows). Append-only like the
    events: a truncated log no longer reaches the seq and hash a checkpoint signed, and only
    the key holder can sign a new one. Checkpoints written before numbering have no number
    and are signed in the older message format.
    """

    number = models.BigIntegerField(null=True, editable=False)
    seq = models.BigIntegerField(editable=False)
    hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(editable=False)
    # Not a foreign key: a deleted predecessor must show up as a broken link, not cascade.
    previous_id = models.BigIntegerField(null=True, editable=False)
    previous_digest = models.CharField(max_length=64, blank=True, editable=False)
    key_id = models.CharField(max_length=32, editable=False)
    # The first keyed event, as the chain head records it (signed: stripping the keys from the
    # events and the head cannot pass the chain off as an unkeyed one).
    keyed_from = models.BigIntegerField(null=True, editable=False)
    signature = models.CharField(max_length=128, editable=False)  # base64 Ed25519 signature

    objects = AuditCheckpointQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["previous_id"], name="audit_checkpoint_one_successor"),
            models.UniqueConstraint(fields=["number"], name="audit_checkpoint_unique_number"),
        ]

    def __str__(self) -> str:
        return f"checkpoint {self.pk} at #{self.seq}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit checkpoints cannot be edited.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit checkpoints cannot be deleted.")
