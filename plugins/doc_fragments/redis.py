# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  redis_host:
    description: Host name or address of the Redis server. The RDB file must be readable on the host the task runs on.
    type: str
    default: 127.0.0.1
  redis_port:
    description: TCP port of the Redis server.
    type: int
    default: 6379
  redis_socket:
    description: Unix socket of the Redis server. When set, I(redis_host) and I(redis_port) are ignored.
    type: path
  redis_user:
    description: ACL user name (Redis 6 and later). Default is the C(default) user.
    type: str
  redis_password:
    description:
      - Password (C(requirepass), or the ACL password of I(redis_user)).
      - Default is the C(REDISCLI_AUTH) environment variable of the task, as for C(redis-cli).
      - Sent over the connection only, never on a command line.
    type: str
  redis_tls:
    description: Connect with TLS.
    type: bool
    default: false
  redis_tls_ca_file:
    description: CA bundle to verify the server certificate with I(redis_tls). Default is the system trust store.
    type: path
notes:
  - Lifeboat speaks the Redis protocol itself (no redis-py or redis-cli needed on the host).
"""

    # The restart options shared by redis_restore and redis_put_back (lifeboat.backup.redis.restart).
    RESTART = r"""
options:
  service_name:
    description: Service restarted by the default I(restart_command).
    type: str
    default: redis-server
  restart_command:
    description:
      - Command (an argument list, run without a shell) that restarts Redis and returns once it was started.
      - Default is C(["systemctl", "restart", <service_name>]).
    type: list
    elements: str
  start_timeout:
    description:
      - Seconds to wait for each step that waits on Redis, the restart command and the server answering with its
        data loaded (and, in M(lifeboat.backup.redis_restore), the save of the live data before the restore).
    type: int
    default: 300
"""
