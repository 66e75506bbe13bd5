"""simulate_chat drives both shared example flows to each of their ends through the real
pipeline (message_receive -> thread processing -> replies stored -> delivery), with the
provider replaced by the simulator's printer. Transactional tests, so on-commit work runs
exactly as it does in production without a broker."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from channels_app.models import ChannelInstance
from conversations.models import ChatThread, Message
from flows import ai
from flows.models import FlowSession
from flows.services import flow_create

SHARED = Path("/work/shared/examples/flows")
CHANNEL = "whatsapp:+15550000001"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def channel(settings):
    settings.SANDBOX_PROVIDER_ENABLED = True
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # the simulator must not use it
    call_command("seed_demo", stdout=StringIO())
    # the demo's own conversations are not part of these transcripts
    from conversations.models import Contact

    Contact.all_objects.all().delete()
    channel = ChannelInstance.objects.get(identifier=CHANNEL)
    flow_create(
        tenant=channel.tenant,
        channel=channel,
        definition=json.loads((SHARED / "clinica-agendamento.json").read_text()),
    )
    return channel


@pytest.fixture
def chat(monkeypatch):
    counter = iter(range(100, 1000))

    def run(*lines: str, phone: str | None = None, name: str = "Ana") -> str:
        monkeypatch.setattr("sys.stdin", StringIO("\n".join(lines) + "\n"))
        out = StringIO()
        call_command(
            "simulate_chat",
            channel=CHANNEL,
            phone=phone or f"+1555777{next(counter):04d}",
            name=name,
            stdout=out,
        )
        return out.getvalue()

    return run


def _bot(output: str) -> list[str]:
    """The bot's messages (each may span lines), in order; notices ("-- ..."), the contact's
    lines ("you> ...") and staff's ("agent> ...") left out."""
    messages: list[list[str]] = []
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("bot> "):
            current = [line[len("bot> ") :]]
            messages.append(current)
        elif line.startswith(("-- ", "you> ", "agent> ")):
            current = None
        elif current is not None:
            current.append(line)
    return ["\n".join(lines).strip() for lines in messages]


def test_shared_examples_match_the_packaged_copies():
    packaged = Path(__file__).resolve().parents[1] / "examples"
    for path in SHARED.glob("*.json"):
        assert json.loads(path.read_text()) == json.loads((packaged / path.name).read_text())


def test_fitness_trial_booking_end(channel, chat):
    output = chat("hi", "1", "2030-01-15", "ana@example.com", name="Ana")

    bot = _bot(output)
    assert bot[0] == "Hi Ana! Welcome to Demo Fitness Studio."
    assert bot[1].startswith("How can we help you today?")
    assert "1. Book a free trial" in bot[1]
    assert bot[2] == "Great! Which day suits you? (YYYY-MM-DD)"
    assert bot[3] == "And your email, so we can send the confirmation?"
    assert bot[4] == "Done: your free trial is on 2030-01-15. See you soon!"
    session = FlowSession.objects.get()
    assert session.status == "completed"
    assert session.variables["stage"] == "trial-booked"
    # every reply went through the pipeline and was "sent" by the simulator
    assert Message.objects.filter(direction="outbound", status="sent").count() == 5
    assert not Message.objects.filter(direction="inbound", processed_at__isnull=True).exists()


def test_fitness_prices_then_bye_end(channel, chat):
    bot = _bot(chat("hello", "prices", "no", name="Bo"))

    assert bot[2] == "Memberships start at 39/month, no joining fee."
    assert bot[3].startswith("Would you like to book a free trial?")
    assert bot[4] == "Thanks for reaching out, Bo!"


def test_fitness_invalid_replies_end_in_handoff(channel, chat):
    output = chat("hi", "banana", "kiwi", "mango", "anyone there?")

    bot = _bot(output)
    assert bot[-1] == "A team member will reply here shortly."
    assert "-- handed off to a person: contact asked for a person" in output
    assert ChatThread.objects.get().needs_human is True
    # automation is paused: the last line got no answer
    assert output.rstrip().endswith("(automation paused)\nyou> anyone there?")


def test_fitness_ai_answers_then_hands_off_on_request(channel, chat, monkeypatch):
    monkeypatch.setattr(
        ai, "chat_model_factory", lambda: FakeListChatModel(responses=["Classes run 6am-10pm."])
    )

    output = chat("hi", "/pick other", "When are classes?", "human")

    bot = _bot(output)
    assert bot[2] == "Sure, what would you like to know?"
    assert bot[3] == "Classes run 6am-10pm."
    assert bot[4] == "A team member will reply here shortly."
    assert Message.objects.filter(sender="ai").count() == 1


def test_fitness_ai_max_turns_then_bye(channel, chat, monkeypatch):
    monkeypatch.setattr(ai, "chat_model_factory", lambda: FakeListChatModel(responses=["Sure!"]))

    bot = _bot(chat("hi", "other", "q1", "q2", "q3", "q4", "q5", name="Cy"))

    assert bot[3:8] == ["Sure!"] * 5
    assert bot[8] == "Thanks for reaching out, Cy!"


def test_fitness_ai_without_model_falls_back_to_a_person(channel, chat):
    output = chat("hi", "3", "What are your hours?")

    bot = _bot(output)
    assert bot[-2:] == [
        "Let me get a team member to help you.",
        "A team member will reply here shortly.",
    ]


def test_clinica_booking_summary_end(channel, chat):
    bot = _bot(chat("Oi", "quero", "Pediatria", "7"))

    assert bot[0].startswith("Olá! Você gostaria de agendar uma consulta?")
    assert bot[1].startswith("Qual especialidade?")
    assert bot[2] == "Qual a idade do paciente?"
    assert bot[3] == (
        "Perfeito! Pedido de consulta de pediatria registrado. Retornaremos em breve."
    )


def test_clinica_adult_in_pediatrics_goes_to_a_person(channel, chat):
    output = chat("consulta", "sim", "2", "30")

    assert _bot(output)[-2:] == [
        "Pediatria atende até 17 anos. Vou te passar para um atendente.",
        "Um atendente vai continuar por aqui.",
    ]
    assert "agendamento manual" in output


def test_clinica_other_specialty_goes_to_a_person(channel, chat):
    assert _bot(chat("agendar", "s", "Outra"))[-1] == "Um atendente vai continuar por aqui."


def test_clinica_no_thanks_end(channel, chat):
    assert _bot(chat("olá", "não"))[-1] == "Tudo bem! Estamos à disposição."


def test_opt_out_in_the_simulator_confirms_once_then_silence(channel, chat):
    phone = "+15557770001"
    output = chat("hi", "STOP", "hi", phone=phone)

    bot = _bot(output)
    assert bot[-1].startswith("You have been unsubscribed")
    assert len(bot) == 3  # greeting, menu, confirmation; nothing for the last "hi"


def test_unknown_channel_is_a_command_error(db, chat):
    with pytest.raises(CommandError, match="No channel"):
        chat("hi")


def test_bad_phone_is_a_command_error(channel, chat):
    with pytest.raises(CommandError, match="E.164"):
        chat("hi", phone="12")


def test_transcript_shows_a_banner_the_contacts_lines_and_no_log_lines(channel, chat, capsys):
    output = chat("hi", "/image the key tag", name="Ana")

    lines = output.splitlines()
    assert lines[0].startswith("Chatting with whatsapp:+15550000001")
    assert "you> hi" in lines and "you> /image the key tag" in lines
    assert all(
        line.startswith(
            ("bot> ", "you> ", "agent> ", "-- ", "Chatting", "Replies from", "1.", "2.", "3.")
        )
        or not line.strip()
        for line in lines
    ), output
    assert '"level"' not in capsys.readouterr().err  # INFO log lines silenced
    # the photo went through the pipeline and was stored (a placeholder picture)
    photo = Message.objects.get(kind="image")
    assert photo.text == "the key tag"
    assert photo.attachments.get().download_status == "stored"


def test_staffs_answers_from_the_inbox_show_up_before_the_next_prompt(channel, chat, monkeypatch):
    # given a conversation handed off to a person
    from conversations.management.commands import simulate_chat
    from tests import factories

    phone = "+15557771234"
    chat("hi", "banana", "kiwi", "mango", phone=phone, name="Ana")
    thread = ChatThread.objects.get(needs_human=True)

    # when staff answer from the inbox (the server process sends it through the sandbox)
    real_receive = simulate_chat.Command._receive
    answered = []

    def receive_then_staff_answers(*args, **kwargs):
        message = real_receive(*args, **kwargs)
        if not answered:
            factories.MessageFactory(
                thread=thread,
                direction="outbound",
                sender="agent",
                status="sent",
                provider_message_id="SBXfrom-the-server",
                text="Hi Ana, Sam here. How can I help?",
            )
            answered.append(True)
        return message

    monkeypatch.setattr(simulate_chat.Command, "_receive", staticmethod(receive_then_staff_answers))
    output = chat("hello?", "thanks", phone=phone, name="Ana")

    # then the answer shows up in the chat, once, before the next prompt
    lines = output.splitlines()
    assert lines.count("agent> Hi Ana, Sam here. How can I help?") == 1
    assert lines.index("agent> Hi Ana, Sam here. How can I help?") < lines.index("you> thanks")
