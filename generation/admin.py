from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from medsyn_site.admin import AuditedInline, AuditedModelAdmin

from .models import GenerationItem, GenerationJob, ModelConfig, Note, NoteVersion, PromptTemplate
from .services import prompt_template_revise


class NoteVersionInline(AuditedInline):
    model = NoteVersion
    fields = ["version", "edited_by", "replaced_at", "edit_reason", "text"]
    readonly_fields = fields
    ordering = ["version"]
    verbose_name = _("earlier version")
    verbose_name_plural = _("earlier versions (each replaced by the edit of the user named)")


@admin.register(Note)
class NoteAdmin(AuditedModelAdmin):
    """Read-only: a note's text changes only by a curator's edit (a new version, audited) and its review state, flags
    and override only by the curation actions; "View on site" opens the note where those actions are."""

    list_display = ["id", "origin", "icd_code", "version", "language", "source_dataset", "split", "created_at"]
    list_filter = ["origin", "language", "source_dataset", "split"]
    search_fields = ["=id", "icd_code", "content_hash", "text"]
    inlines = [NoteVersionInline]

    def view_on_site(self, note: Note) -> str | None:
        if note.origin == Note.Origin.SYNTHETIC:
            return reverse("curation:curation_note", args=[note.pk])
        return None


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    """Saving an edited template adds a new version through prompt_template_revise; nothing is updated in place."""

    list_display = ["name", "version", "variant", "language", "is_current", "created_by", "created_at"]
    list_filter = ["variant", "language", "is_current"]
    search_fields = ["name", "system_text", "user_text"]
    readonly_fields = ["version", "is_current", "created_by", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: PromptTemplate | None = None) -> list[str]:
        fixed = ["name", "variant", "language"] if obj is not None else []
        return [*self.readonly_fields, *fixed]

    def save_model(self, request: HttpRequest, obj: PromptTemplate, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
            super().save_model(request, obj, form, change)
            return
        original = PromptTemplate.objects.get(pk=obj.pk)
        revised = prompt_template_revise(template=original, system_text=obj.system_text, user_text=obj.user_text,
                                         author=request.user)
        obj.pk = revised.pk
        messages.info(request, _("Saved as %(template)s (earlier versions are kept unchanged).")
                      % {"template": revised})

    def has_delete_permission(self, request: HttpRequest, obj: PromptTemplate | None = None) -> bool:
        return False  # notes point at the exact version they used


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "prompt_format", "licence", "api_model", "model_path", "adapter_path",
                    "batch_size", "concurrency", "updated_at"]
    list_filter = ["backend"]
    search_fields = ["name", "api_model", "model_path"]
    fieldsets = [
        (None, {"fields": ["name", "backend", "prompt_format", "languages", "licence", "licence_url", "description"]}),
        # A job sends batch_size requests at a time and waits for all of them (the cost cap is checked between
        # batches), so at most min(concurrency, batch_size) requests are ever in flight.
        (_("API"), {"fields": ["base_url", "api_model", "concurrency", "timeout_seconds", "max_retries",
                               "backoff_initial_seconds", "backoff_max_seconds", "price_per_1k_tokens"],
                    "description": _("Requests in flight per job: the smaller of concurrency and batch size.")}),
        (_("Local"), {"fields": ["model_path", "gguf_file", "adapter_path", "revision", "dtype", "device",
                                 "batch_size"]}),
        (_("Sampling"), {"fields": ["temperature", "top_p", "max_new_tokens"]}),
    ]


class GenerationItemInline(AuditedInline):
    model = GenerationItem
    fields = ["index", "category", "status", "error", "note", "attempts", "latency_s"]
    readonly_fields = fields


@admin.register(GenerationJob)
class GenerationJobAdmin(AuditedModelAdmin):
    """Read-only: jobs are created, cancelled and resumed through the generation pages and API (audited)."""

    list_display = ["id", "status", "model_config", "prompt_template", "planned", "ok", "failed", "skipped",
                    "created_by", "created_at"]
    list_filter = ["status", "model_config"]
    inlines = [GenerationItemInline]
