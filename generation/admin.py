from django.contrib import admin, messages
from django.http import HttpRequest

from .models import GenerationItem, GenerationJob, ModelConfig, Note, PromptTemplate
from .services import prompt_template_revise


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["id", "origin", "icd_code", "language", "source_dataset", "split", "created_at"]
    list_filter = ["origin", "language", "source_dataset", "split", "icd_category"]
    search_fields = ["text", "icd_code", "content_hash"]
    readonly_fields = ["content_hash", "created_at"]


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
        messages.info(request, f"Saved as {revised} (earlier versions are kept unchanged).")

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
        ("API", {"fields": ["base_url", "api_model", "concurrency", "timeout_seconds", "max_retries",
                            "backoff_initial_seconds", "backoff_max_seconds", "price_per_1k_tokens"],
                 "description": "Requests in flight per job: the smaller of concurrency and batch size."}),
        ("Local", {"fields": ["model_path", "gguf_file", "adapter_path", "revision", "dtype", "device",
                              "batch_size"]}),
        ("Sampling", {"fields": ["temperature", "top_p", "max_new_tokens"]}),
    ]


class GenerationItemInline(admin.TabularInline):
    model = GenerationItem
    fields = ["index", "category", "status", "error", "note", "attempts", "latency_s"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    """Read-only: jobs are created, cancelled and resumed through the generation pages and API."""

    list_display = ["id", "status", "model_config", "prompt_template", "planned", "ok", "failed", "skipped",
                    "created_by", "created_at"]
    list_filter = ["status", "model_config"]
    inlines = [GenerationItemInline]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
