"""Access reviews in the Django admin: definitions through the services (audited and
validated, like the portal's form); runs and items read only (they change through reviewer
decisions and the jobs, never by hand)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from common.admin import ServiceBackedAdmin

from . import services
from .models import ReviewDefinition, ReviewerAssignment, ReviewInstance, ReviewItem


class ReviewDefinitionAdminForm(forms.ModelForm):
    class Meta:
        model = ReviewDefinition
        fields = ("roles", "named_reviewers", "owners", *services.DEFINITION_FIELDS)

    def clean(self):
        cleaned = super().clean()
        if (
            cleaned.get("reviewer_type") == ReviewDefinition.Reviewers.NAMED
            and "named_reviewers" in cleaned
            and not cleaned["named_reviewers"]
        ):
            raise ValidationError({"named_reviewers": "Name at least one reviewer."})
        return cleaned


@admin.register(ReviewDefinition)
class ReviewDefinitionAdmin(ServiceBackedAdmin):
    form = ReviewDefinitionAdminForm
    list_display = ("name", "recurrence", "reviewer_type", "start_date", "duration_days", "enabled")
    list_filter = ("recurrence", "reviewer_type", "enabled")
    search_fields = ("name", "description")
    filter_horizontal = ("roles",)
    raw_id_fields = ("named_reviewers", "owners", "fallback_reviewer")

    def has_delete_permission(self, request, obj=None):
        return False  # runs keep pointing at it: disable it instead

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {field: data[field] for field in services.DEFINITION_FIELDS if field in data}
        if not change:
            created = services.review_definition_create(
                actor=request.user,
                roles=list(data["roles"]),
                named_reviewers=list(data.get("named_reviewers", [])),
                owners=list(data.get("owners", [])),
                **fields,
            )
            obj.pk = created.pk
            obj._state.adding = False
        else:
            services.review_definition_update(
                actor=request.user,
                definition=ReviewDefinition.objects.get(pk=obj.pk),
                roles=list(data["roles"]),
                named_reviewers=list(data.get("named_reviewers", [])),
                owners=list(data.get("owners", [])),
                **fields,
            )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown to whoever may view it; nobody adds, edits or deletes here."""

    actions = None
    show_full_result_count = False  # a run may hold 100,000 items: one COUNT per page

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReviewInstance)
class ReviewInstanceAdmin(ReadOnlyAdmin):
    list_display = ("definition", "occurrence", "starts_at", "ends_at", "status", "item_count", "applied_at")
    list_filter = ("status",)
    list_select_related = ("definition",)
    search_fields = ("definition__name",)
    date_hierarchy = "starts_at"


class ReviewerInline(admin.TabularInline):
    model = ReviewerAssignment
    fields = ("reviewer",)
    readonly_fields = ("reviewer",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = (
        "principal_label",
        "role",
        "scope",
        "assignment_type",
        "decision",
        "recommendation",
        "outcome",
        "instance",
    )
    list_filter = ("decision", "outcome", "assignment_type", "recommendation")
    list_select_related = ("role", "instance__definition")
    search_fields = ("principal_label", "role__name", "scope")
    readonly_fields = [field.name for field in ReviewItem._meta.concrete_fields]
    inlines = [ReviewerInline]
