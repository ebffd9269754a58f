"""What every command-line entry point shares: `--help` that keeps the module's usage examples
as written and shows every option's default."""

import argparse
import copy


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description (the module docstring, with its example commands) is printed verbatim,
    and every option's help ends with its default, also options without help text (argparse's
    ArgumentDefaultsHelpFormatter skips those, and reflows the examples)."""

    def _get_help_string(self, action):
        text = (action.help or "").strip()
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or "default" in text.lower()
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text  # positionals, --help, and help that already says what the default is
        if action.nargs == 0:  # a flag: --erase / --no-erase, or a lone --fp32
            return f"{text} (default: {'on' if action.default else 'off'})".strip()
        if action.default is None:
            return f"{text} (default: none)".strip()
        default = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
        return f"{text} (default: {str(default).replace('%', '%%')})".strip()

    def _format_action(self, action):
        action = copy.copy(action)
        action.help = self._get_help_string(action) or None
        return super()._format_action(action)


def parser(prog: str, description: str | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser named as users type the command (`python -m train.superres`)."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
