"""smtpd(8) session glue that is not socket code: settings → machine settings, limits, log text.

roost.net.smtpd runs the socket loop; roost.proto.smtp is the protocol machine; this package
holds what joins them and can be tested without a socket: roost.smtpd.config (postconf(5)
parameters of one listener → MachineSettings and SessionLimits) and roost.smtpd.logtext
(Postfix's smtpd log lines, which pflogsumm and fail2ban parse).
"""
