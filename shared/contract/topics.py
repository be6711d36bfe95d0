"""Topic names. Settings may prefix them (``CRM_TOPIC_PREFIX``); these are the defaults."""

CHANNEL_POS = "crm.channel.pos"
CHANNEL_WECHAT = "crm.channel.wechat"
CHANNEL_WEB = "crm.channel.web"
CHANNEL_TOPICS = {"pos": CHANNEL_POS, "wechat": CHANNEL_WECHAT, "web": CHANNEL_WEB}

DEADLETTER = "crm.deadletter"
CUSTOMER_EVENTS = "crm.customer.events"
CUSTOMER_MERGED = "crm.customer.merged"
LOYALTY_EVENTS = "crm.loyalty.events"
ALERTS_EVENTS = "crm.alerts.events"
CAMPAIGN_EVENTS = "crm.campaigns.events"
CAMPAIGN_TOUCHES = "crm.campaigns.touches"

# The topics whose ViewPartUpdated messages fill the single customer view.
VIEW_PART_TOPICS = [LOYALTY_EVENTS, ALERTS_EVENTS, CAMPAIGN_EVENTS]

ALL_TOPICS = [
    CHANNEL_POS,
    CHANNEL_WECHAT,
    CHANNEL_WEB,
    DEADLETTER,
    CUSTOMER_EVENTS,
    CUSTOMER_MERGED,
    LOYALTY_EVENTS,
    ALERTS_EVENTS,
    CAMPAIGN_EVENTS,
    CAMPAIGN_TOUCHES,
]


def named(topic: str, prefix: str = "") -> str:
    """The topic's name under a deployment prefix."""
    return f"{prefix}{topic}"

# Issue 12, scoped access (H2): identity -> everyone, each customer's owning store (``CustomerOwnerChanged``).
CUSTOMER_OWNERS = "crm.customer.owners"
ALL_TOPICS.append(CUSTOMER_OWNERS)
