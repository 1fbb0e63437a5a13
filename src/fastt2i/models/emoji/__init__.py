"""Emoji-domain networks trained on emoji64: `emoji-clip` (image tower in MiniLM's text space) and `emoji-net` (FD features)."""

from fastt2i.models.emoji.clip import EmojiCLIP, EmojiCLIPConfig
from fastt2i.models.emoji.net import EmojiNet, EmojiNetConfig

__all__ = ["EmojiCLIP", "EmojiCLIPConfig", "EmojiNet", "EmojiNetConfig"]
