"""moto_server over HTTPS that ends each TLS connection with a proper close_notify.

pgBackRest speaks only HTTPS to S3. `moto_server --ssl` works for boto3, but Werkzeug closes every
connection (`Connection: close`) by dropping the socket without a TLS close_notify; OpenSSL 3 in
pgBackRest then reports "unexpected eof while reading" and retries until it gives up. Unwrapping the
TLS session at the end of each request fixes that. Usage: python moto_tls.py -H 127.0.0.1 -p PORT --ssl
"""

import ssl
import sys

from werkzeug.serving import WSGIRequestHandler

_finish = WSGIRequestHandler.finish


def _finish_with_close_notify(self):
    _finish(self)
    connection = self.connection
    if isinstance(connection, ssl.SSLSocket):
        try:
            connection.settimeout(2)
            connection.unwrap()
        except (OSError, ValueError):
            pass


WSGIRequestHandler.finish = _finish_with_close_notify

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
