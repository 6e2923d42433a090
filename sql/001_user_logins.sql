-- The table analysts query. The seven columns are the published contract;
-- message_id (the SQS messageId) makes redelivery idempotent.
CREATE TABLE IF NOT EXISTS user_logins (
    user_id          varchar(128),
    device_type      varchar(32),
    masked_ip        varchar(256),
    masked_device_id varchar(256),
    locale           varchar(32),
    app_version      integer,
    create_date      date,
    message_id       varchar(128) NOT NULL,
    CONSTRAINT user_logins_message_id_key UNIQUE (message_id)
);
