"""The identifiers a channel event names its customer by (part of the channel event contract in
``shared.contract.events``): every type identity knows, and the rules an event's identity follows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

IDENTIFIER_TYPES = (
    "phone",
    "wechat_unionid",
    "wechat_openid",
    "member_id",
    "web_user_id",
    "email",
    "anonymous_id",
)


class Open(BaseModel):
    """A contract model that keeps fields it does not know and never changes once read."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Identifiers(Open):
    """Whatever identifiers the channel has."""

    phone: str | None = Field(None, max_length=40)
    wechat_openid: str | None = Field(None, max_length=128)
    wechat_unionid: str | None = Field(None, max_length=128)
    member_id: str | None = Field(None, max_length=128)
    web_user_id: str | None = Field(None, max_length=128)
    email: str | None = Field(None, max_length=254)
    anonymous_id: str | None = Field(None, max_length=128)

    def given(self) -> bool:
        """Whether any identifier is given."""
        # Spelled out: this runs for every event and a generator over getattr was a visible cost.
        return bool(self.phone or self.wechat_unionid or self.wechat_openid or self.member_id or self.web_user_id
                    or self.email or self.anonymous_id)

    def present(self) -> dict[str, str]:
        """The identifiers given, by type, in priority order."""
        return {n: v for n in IDENTIFIER_TYPES if (v := getattr(self, n))}


class Identity(Identifiers):
    """Whatever identifiers the channel has; at least one."""

    @model_validator(mode="after")
    def _at_least_one(self) -> Identity:
        if not self.given():
            raise ValueError(f"identity needs at least one of {', '.join(IDENTIFIER_TYPES)}")
        return self


class SaleIdentity(Identifiers):
    """A sale's or refund's identifiers: none at all (``{}``) is a sale to a non-member (issue 15), counted in
    store totals only."""
