"""Every setting of `ics-discovery run`, validated once at start, from environment and file.

A validator configures the service through its Helm values, which become
environment variables (`ICS_DISCOVERY_<NAME>`) or one settings file (YAML,
TOML or JSON; `--config PATH` or `ICS_DISCOVERY_CONFIG_FILE`). Environment
wins over the file, the file over defaults. A service that starts with a bad
setting would fail later and far from the cause, so everything is checked
here, and each problem is reported with the setting's name and its variable.
`settings_help()` renders the reference from the fields themselves, so
`ics-discovery run --help` cannot drift from what is accepted.

The model itself is pure; `check_files` is the one step that looks at the
filesystem and the environment (key file mode 0600, certificate files, the key
variable), and it never reports a secret's value.

By job: `values` (reading list, map, URL and host:port values), `model` (the
fields and derived views), `checks` (cross-field and filesystem checks),
`loading` (file, environment, errors), `help` (the rendered reference).
"""

from discovery.settings.checks import SettingProblem as SettingProblem
from discovery.settings.checks import SettingsInvalid as SettingsInvalid
from discovery.settings.checks import check_files as check_files
from discovery.settings.checks import consistency_problems as consistency_problems
from discovery.settings.help import settings_help as settings_help
from discovery.settings.loading import load_settings as load_settings
from discovery.settings.loading import read_settings_file as read_settings_file
from discovery.settings.loading import unknown_environment as unknown_environment
from discovery.settings.model import Settings as Settings
from discovery.settings.values import CONFIG_FILE_ENV as CONFIG_FILE_ENV
from discovery.settings.values import ENV_PREFIX as ENV_PREFIX
from discovery.settings.values import parse_host_port as parse_host_port
from discovery.settings.values import parse_workload_ref as parse_workload_ref
