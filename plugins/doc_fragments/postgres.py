# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  login_user:
    description:
      - The user to log in as. Unset means libpq's default (C(PGUSER), else the operating system user).
    type: str
    aliases: [login]
  login_password:
    description:
      - The password to log in with. It reaches C(psql), C(pg_dump) and C(pg_restore) only as C(PGPASSWORD) in their
        environment, never on a command line, in a log or in a manifest.
      - Unset means libpq's default (C(PGPASSWORD), C(PGPASSFILE), C(~/.pgpass)).
    type: str
  login_host:
    description:
      - Host running the database. Unset means C(PGHOST), else the default local socket.
      - If you have connection issues when using C(localhost), try to use C(127.0.0.1) instead.
    type: str
    aliases: [host]
  login_unix_socket:
    description:
      - Directory of the server's Unix domain socket for local connections, such as C(/var/run/postgresql).
      - Mutually exclusive with I(login_host).
    type: str
    aliases: [unix_socket]
  login_port:
    description: Database port to connect to. Unset means C(PGPORT), else 5432.
    type: int
    aliases: [port]
  ssl_mode:
    description:
      - Whether or with what priority a secure SSL TCP/IP connection will be negotiated with the server.
      - Unset means C(PGSSLMODE), else libpq's default C(prefer).
    type: str
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: File of the SSL certificate authority (CA) certificate(s) the server's certificate must be signed by.
    type: str
    aliases: [ssl_rootcert]
  ssl_cert:
    description: File of the client SSL certificate.
    type: path
  ssl_key:
    description: File of the secret key of the client certificate.
    type: path
  connect_params:
    description:
      - Any other libpq connection parameters, such as C(connect_timeout), C(application_name) or C(options).
      - C(password) and C(dbname) are refused here; use I(login_password) and I(database).
    type: dict
    default: {}
  maintenance_db:
    description:
      - Database used for cluster-level work (creating, dropping and renaming databases, globals).
    type: str
    default: postgres
  pg_bin_dir:
    description:
      - Directory holding C(psql), C(pg_dump), C(pg_dumpall) and C(pg_restore), such as C(/usr/lib/postgresql/16/bin).
        Unset means the commands on C(PATH).
      - C(pg_dump) must be at least as new as the server.
    type: path
requirements:
  - The PostgreSQL client programs (C(psql), C(pg_dump), C(pg_restore)) on the managed host (Debian/Ubuntu C(postgresql-client)).
notes:
  - Connection options left unset are not passed at all, so libpq's environment variables apply as they do for C(psql).
  - Without I(login_host) or I(login_unix_socket) and without C(PGHOST) the default local socket is used, which often
    needs peer authentication, so run the task as the C(postgres) user (C(become_user)).
"""
