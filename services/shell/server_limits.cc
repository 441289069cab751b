#include "services/shell/server_limits.h"

#include "grpc/grpc.h"
#include "grpcpp/resource_quota.h"

namespace casework::shell {

void ApplyServerLimits(const ServerLimits& limits, grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(limits.receive_message_bytes_max);
  builder->SetMaxSendMessageSize(limits.send_message_bytes_max);
  builder->AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, limits.metadata_bytes_max);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.concurrent_streams_max);
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, limits.handshake_timeout_ms);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              limits.min_ping_interval_without_data_ms);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, limits.ping_strikes_max);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, limits.keepalive_time_ms);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, limits.keepalive_timeout_ms);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, limits.connection_idle_ms_max);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, limits.connection_age_ms_max);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, limits.connection_age_grace_ms);
  grpc::ResourceQuota quota("caseworkd");
  quota.Resize(static_cast<size_t>(limits.memory_quota_bytes));
  quota.SetMaxThreads(limits.threads_max);
  builder->SetResourceQuota(quota);
}

}  // namespace casework::shell
