"""Block Kit's limits and element types, as Slack enforces them (PLATFORM_NOTES.md, Slack's reference).

The numbers and type sets only; the checker that applies them is ``blocks``.
"""

from __future__ import annotations

from typing import Final

MESSAGE_BLOCKS: Final = 50
SURFACE_BLOCKS: Final = 100  # modals and the Home tab
SECTION_TEXT: Final = 3000
SECTION_FIELDS: Final = 10
SECTION_FIELD_TEXT: Final = 2000
HEADER_TEXT: Final = 150
MARKDOWN_TEXT: Final = 12000
BUTTON_TEXT: Final = 75
BUTTON_VALUE: Final = 2000
BUTTON_URL: Final = 3000
ID_LENGTH: Final = 255  # action_id, block_id, callback_id, external_id
ACTIONS_ELEMENTS: Final = 25
CONTEXT_ELEMENTS: Final = 10
VIEW_TITLE: Final = 24  # title, submit and close of a modal
PRIVATE_METADATA: Final = 3000
INPUT_LABEL: Final = 2000
PLACEHOLDER: Final = 150
SELECT_OPTIONS: Final = 100
OPTION_TEXT: Final = 75
OPTION_VALUE: Final = 150
CHOICE_OPTIONS: Final = 10  # checkboxes, radio buttons
OVERFLOW_OPTIONS: Final = 5
CONFIRM_TITLE: Final = 100
CONFIRM_TEXT: Final = 300
CONFIRM_BUTTON: Final = 30
IMAGE_ALT_TEXT: Final = 2000

BLOCK_TYPES: Final = frozenset(
    {
        "actions",
        "call",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)

SELECTS: Final = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)
INPUTS: Final = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_text_input",
        "rich_text_input",
        "file_input",
    }
)
PICKERS: Final = frozenset({"datepicker", "timepicker", "datetimepicker"})
CHOICES: Final = frozenset({"checkboxes", "radio_buttons"})
INTERACTIVE_ELEMENTS: Final = (
    frozenset({"button", "overflow", "workflow_button"}) | SELECTS | INPUTS | PICKERS | CHOICES
)
"""Elements a user acts on: Slack gives each an ``action_id`` when the app leaves it out."""

TEXT_TYPES: Final = frozenset({"plain_text", "mrkdwn"})
