"""Mail to members: invitations and sign-in links, sent through the SMTP server the operator
configures (STARTTLS, implicit TLS or, on a loopback test server, neither). smtplib blocks, so
each message is sent on a worker thread."""

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from services.ingest.team_settings import TeamSettings


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class MailUnsent(Exception):
    """The message could not be handed to the SMTP server (or none is configured)."""


@dataclass(frozen=True)
class Mailer:
    settings: TeamSettings

    @property
    def configured(self) -> bool:
        return self.settings.smtp_host is not None

    def _message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.settings.mail_from, mail.to, mail.subject
        message.set_content(mail.text)
        return message

    def _send_now(self, mail: Mail) -> None:
        s = self.settings
        assert s.smtp_host is not None  # checked by send
        smtp_class = smtplib.SMTP_SSL if s.smtp_security == "tls" else smtplib.SMTP
        with smtp_class(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
            if s.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username and s.smtp_password:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(self._message(mail))

    async def send(self, mail: Mail) -> None:
        """Hand `mail` to the SMTP server; MailUnsent says why it could not be."""
        if not self.configured:
            raise MailUnsent("no SMTP server is configured on this deployment")
        try:
            await asyncio.to_thread(self._send_now, mail)
        except (OSError, smtplib.SMTPException) as error:
            raise MailUnsent(f"the SMTP server refused or could not be reached: {type(error).__name__}") from error
