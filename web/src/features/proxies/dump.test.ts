import { describe, expect, it } from 'vitest'
import { tablesOf } from './dump'

// The shape sluice-proxy's /config_dump answers (proto field names, as Envoy's).
const dump = {
  configs: [
    { '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap: { node: { id: 'sidecar~127.0.0.6~reviews-v2' } } },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
      version_info: '4',
      dynamic_listeners: [
        { name: 'virtualOutbound', active_state: { version_info: '4', listener: { address: { socket_address: { address: '127.0.0.6', port_value: 15001 } } } } },
        { name: 'inbound|9080', warming_state: { version_info: '5', listener: { address: { socket_address: { address: '127.0.0.6', port_value: 9080 } } } } },
      ],
    },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
      dynamic_route_configs: [
        { route_config: { name: 'outbound', virtual_hosts: [{ name: 'ratings.default.svc.cluster.local:9080', domains: ['ratings', 'ratings:9080'], routes: [{}, {}] }] } },
      ],
      error_state: { details: 'route_config outbound: unknown filter' },
    },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
      dynamic_active_clusters: [
        { version_info: '4', cluster: { name: 'outbound|9080|v1|ratings.default.svc.cluster.local', type: 'EDS', eds_cluster_config: {}, lb_policy: 'LEAST_REQUEST' } },
        { version_info: '4', cluster: { name: 'inbound|9080||', load_assignment: {} } },
      ],
      dynamic_warming_clusters: [{ version_info: '5', cluster: { name: 'outbound|9080||details.default.svc.cluster.local', eds_cluster_config: {} } }],
    },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
      dynamic_endpoint_configs: [
        {
          endpoint_config: {
            cluster_name: 'outbound|9080|v1|ratings.default.svc.cluster.local',
            endpoints: [{ lb_endpoints: [
              { endpoint: { address: { socket_address: { address: '127.0.0.8', port_value: 9080 } } }, health_status: 'HEALTHY' },
              { endpoint: { address: { socket_address: { address: '127.0.0.7', port_value: 9080 } } }, health_status: 'UNHEALTHY' },
              { endpoint: { address: { socket_address: { address: '::1', port_value: 9080 } } } },
            ] }],
          },
        },
      ],
    },
  ],
}

describe('config dump tables', () => {
  const t = tablesOf(dump)

  it('lists active and warming listeners with their addresses, by name', () => {
    expect(t.listeners).toEqual([
      { name: 'inbound|9080', address: '127.0.0.6:9080', state: 'warming', version: '5' },
      { name: 'virtualOutbound', address: '127.0.0.6:15001', state: 'active', version: '4' },
    ])
  })

  it('lists every virtual host with its domains and route count, and a NACK', () => {
    expect(t.routes).toEqual([{ config: 'outbound', virtualHost: 'ratings.default.svc.cluster.local:9080', domains: ['ratings', 'ratings:9080'], routes: 2 }])
    expect(t.errors).toEqual({ routes: 'route_config outbound: unknown filter' })
  })

  it('fills the proto3 defaults the dump leaves out', () => {
    expect(t.clusters).toEqual([
      { name: 'inbound|9080||', discovery: 'STATIC', lbPolicy: 'ROUND_ROBIN', state: 'active', version: '4' },
      { name: 'outbound|9080|v1|ratings.default.svc.cluster.local', discovery: 'EDS', lbPolicy: 'LEAST_REQUEST', state: 'active', version: '4' },
      { name: 'outbound|9080||details.default.svc.cluster.local', discovery: 'EDS', lbPolicy: 'ROUND_ROBIN', state: 'warming', version: '5' },
    ])
  })

  it('shows each endpoint health, an omitted one as HEALTHY', () => {
    expect(t.endpoints.map((e) => `${e.address} ${e.health}`)).toEqual(['127.0.0.7:9080 UNHEALTHY', '127.0.0.8:9080 HEALTHY', '[::1]:9080 HEALTHY'])
  })

  it('survives a dump of another shape', () => {
    expect(tablesOf({})).toEqual({ listeners: [], routes: [], clusters: [], endpoints: [], errors: {} })
    expect(tablesOf({ configs: [null, 3, { '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump', dynamic_listeners: 'x' }] }).listeners).toEqual([])
  })
})
