"""The services' refusals (409, 422) in the page's language: each error code the console's pages can meet has a
sentence of the catalogues saying what to do; any other code gets a general sentence naming the field at fault.
The API's own sentence is English and is never shown: a Chinese page would carry an English line."""

from __future__ import annotations

from typing import Any

from services.console import i18n
from services.console.clients import ApiError
from services.console.i18n import N_, _
from services.console.pages.campaigns import CRITERIA
from services.console.pages.rewards import REFUSALS

BAD_PHONE = N_("This is not a usable mobile number. Check the digits (11 for a mainland China number).")

# Error code -> what it means for the person, with what to do (the services' codes: README, each service's API).
WORDS: dict[str, str] = {
    **REFUSALS,
    # identity: search, profile and phone corrections, merges, imports
    "invalid_phone": BAD_PHONE,
    "one_identifier": N_("Give exactly one identifier to look up."),
    "phone_in_use": N_("Another customer (or a record merged into this one) holds that phone number. Check the "
                       "number, or merge or unmerge first."),
    "phone_unchanged": N_("The customer has that phone number already."),
    "phone_erased": N_("That phone number belonged to an erased customer and cannot be given again."),
    "newer_channel_value": N_("A channel reported a newer value for these fields. Reload the page to see it "
                              "before correcting."),
    "no_fields": N_("Give at least one field to correct."),
    "already_one_customer": N_("These two are one customer already. Reload the conflicts."),
    "conflict_not_about_these": N_("That conflict is not about these two customers. Reload the conflicts."),
    "merge_already_undone": N_("This merge was undone already."),
    "choose_survivor": N_("Choose one of the two customers to keep."),
    "import_files": N_("Upload either a member file (optionally with points lots) or an order file."),
    "import_empty_file": N_("The uploaded file is empty. Choose the right file."),
    "invalid_multipart": N_("The upload could not be read. Choose the file again and retry."),
    "moment_needs_zone": N_("Give the times with a time zone."),
    # loyalty: rewards, adjustments, approvals, tiers
    "insufficient_points": N_("The balance does not cover this. Take fewer points or choose a cheaper reward."),
    "negative_stock": N_("That would take the stock below zero."),
    "invalid_validity": N_("The start date must be before the end date."),
    "zero_adjustment": N_("An adjustment must add or take away points."),
    "already_decided": N_("Someone decided this meanwhile. Reload the page."),
    "already_cancelled": N_("This redemption was cancelled already."),
    "override_in_force": N_("This customer's tier is set by hand already. Lift that first."),
    "no_override_in_force": N_("This customer's tier is not set by hand now."),
    "unknown_tier": N_("Choose one of the tiers in force."),
    "until_in_past": N_("The last day must be today or later."),
    "idempotency_key_reused": N_("This form was sent before with other values. Reload the page and try again."),
    # alerts: the inbox and the reports
    "alert_resolved": N_("This alert was resolved already. Reload the inbox."),
    "reason_required": N_("Choose a reason to go with the words."),
    "reason_not_applicable": N_("This kind of alert takes no reason. Leave the reason empty."),
    "reason_text_required": N_("For “Other”, say the reason in words."),
    "invalid_month": N_("Give the month as YYYY-MM, for example 2026-11."),
    "month_out_of_range": N_("Choose a month between 1900-01 and 2100-12."),
    "as_of_in_future": N_("The date cannot be later than today."),
    "as_of_out_of_range": N_("The date is too early. Choose a date from 1900 on."),
    "as_of_needs_zone": N_("Give the date with a time zone."),
    "as_of_outside_window": N_("The date must lie within the scan window around today."),
    "store_or_region": N_("Give a store or a region, not both."),
    "unknown_store": N_("There is no such store. Check the store ID."),
    "churn_model_unavailable": N_("The churn model cannot be fitted yet (too little purchase history). Leave out "
                                  "the probability still active."),
    # campaigns
    "invalid_transition": N_("The campaign's status does not allow this now. Reload the page to see its status."),
    "not_a_draft": N_("Only a draft campaign can be edited."),
    "campaign_ended": N_("The campaign's end has passed. Change its dates first."),
    "concurrent_change": N_("The campaign changed meanwhile. Reload the page and try again."),
    "not_launched": N_("The campaign has not launched yet: its results start at launch."),
    # admin: dead letters, webhooks
    "cannot_redrive": N_("The broker refuses this message for good: it cannot be sent again."),
    "already_redriven": N_("This dead letter was sent again already."),
    "delivery_not_dead": N_("Only a failed delivery can be sent again by hand."),
    "invalid_url": N_("The address is not a usable https URL."),
}
# A field named in a refusal's details (the last known part of its path) -> the label its form shows.
FIELDS: dict[str, str] = {
    **CRITERIA,
    "name": N_("Name"), "objective": N_("Objective"), "channel": N_("Channel"), "starts_at": N_("Starts"),
    "ends_at": N_("Ends"), "attribution_window_days": N_("Attribution window (days)"),
    "control_share": N_("Control group share"), "bonus_multiplier": N_("Bonus points multiplier (optional)"),
    "fixed": N_("Fixed cost (¥)"), "per_touch": N_("Cost per touch (¥)"), "offer": N_("Offer (what the message says)"),
    "reason": N_("Reason"), "reason_text": N_("Reason in words (for Other)"), "note": N_("Note (optional)"),
    "url": N_("URL (https)"), "month": N_("Month"), "store_id": N_("Store"), "points": N_("Points"),
}
_PLACES = ("body", "query", "path", "form")


def field_label(loc: Any) -> str:
    """The form's label for a detail's ``loc`` (``body.audience.recency_days.min``): its last part a form
    labels, else the path as the API wrote it (a field name, never a sentence; empty for the whole body)."""
    parts = [p for p in str(loc).split(".") if p and p not in _PLACES]
    for part in reversed(parts):
        if part in FIELDS:
            return _(FIELDS[part])
    return ".".join(parts)


def worded(exc: ApiError) -> str:
    """A service's 409 or 422 in the page's language: the code's sentence, or one naming the fields at fault."""
    if exc.code in WORDS:
        return _(WORDS[exc.code])
    details = exc.details if isinstance(exc.details, list) else []
    # A refusal of the whole body (no field in its path) names none: the general sentence says it.
    labels = (field_label(d.get("loc", "")) for d in details if isinstance(d, dict))
    fields = list(dict.fromkeys(label for label in labels if label))
    if fields:
        separator = "、" if i18n.current().startswith("zh") else ", "
        return _("%(fields)s: this value was not accepted. Correct it and try again.", fields=separator.join(fields))
    if exc.status == 409:
        return _("This cannot be done in its current state. Reload the page and try again.")
    return _("The values given were not accepted. Check them and try again.")
